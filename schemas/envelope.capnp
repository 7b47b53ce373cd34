# The record format: every record on every edge, in LMDB and on the wire, is one Envelope,
# serialized as a single Cap'n Proto message in flat-array (unpacked) form.
@0xade5c86c52eda92d;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("troupe::schema");

# Where a record came from: the stage that created it and that stage's own sequence number.
# Together they are unique within an app and stable across restarts, so they serve as an
# idempotency key for sinks and for dropping duplicates across nodes.
struct RecordId {
  origin @0 :Text;    # name of the stage that created the record
  seq @1 :UInt64;     # per-origin sequence number, starting at 0
}

struct Header {
  name @0 :Text;
  value @1 :Data;
}

struct Envelope {
  id @0 :RecordId;
  key @1 :Data;            # routing / state key; empty when the record has none
  eventTime @2 :Int64;     # milliseconds since the Unix epoch; 0 when unknown
  attempt @3 :UInt32;      # how many times a stage has failed on this record before
  headers @4 :List(Header);
  payloadType @5 :UInt64;  # Cap'n Proto type id of the payload struct; 0 when unknown
  payload @6 :AnyPointer;  # a struct of the app's payload type
  sourcePosition @7 :UInt64; # where in its source the record came from (a line); 0 when unknown
}

# One entry of a stage's dead-letter log.
struct DeadLetter {
  stage @0 :Text;
  error @1 :Text;          # what the stage code threw
  attempts @2 :UInt32;     # how many times the record was tried
  failedAt @3 :Int64;      # milliseconds since the Unix epoch
  input @4 :Text;          # the edge the record was read from, or the source's description
  inputSeq @5 :UInt64;     # its position in that edge (or the source's own position, e.g. a line)
  record @6 :Data;         # the Envelope bytes as read; raw input text for a source
  partition @7 :UInt32;    # the partition of `input` the record was read from
  sourcePosition @8 :UInt64; # where in its source the record came from (a line); 0 when unknown
}

# What the generator source emits when the app names no payload type.
struct Generated {
  index @0 :UInt64;
  body @1 :Data;
}

# What one node link carries per request (runtime/src/net): records of one edge, in the order the
# sending node's log holds them, each with the partition and position it has there, so that the
# receiver keeps the highest position per partition and drops what it was sent before.
struct LinkItem {
  partition @0 :UInt32;
  position @1 :UInt64;
  envelope @2 :Data;       # the record's Envelope, unchanged
}

# The incarnation of the sending node's store (made once with it) for a partition: a new one
# with positions the receiver already holds means the sender's data was reset.
struct LinkEpoch {
  partition @0 :UInt32;
  epoch @1 :UInt64;
}

struct LinkBatch {
  epochs @0 :List(LinkEpoch); # of the partitions the batch holds records of
  items @1 :List(LinkItem);
  end @2 :Bool;            # the sending worker's partitions are finished: nothing follows
}
