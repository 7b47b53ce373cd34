# The end-to-end crash tests' payload: one generated record, and what e2e.running adds to it.
# No 64-bit integers: Cap'n Proto's JSON codec writes those as strings.
@0xfd8122c3e9845df2;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("e2e");

struct Item {
  index @0 :UInt32;    # set by the generator: the record's number, 0..count-1
  body @1 :Text;       # set by the generator: filler; e2e.running leaves it empty
  bucket @2 :UInt32;   # index % 16
  running @3 :UInt32;  # the bucket's running sum of (index % 1000), mod 2^32
}
