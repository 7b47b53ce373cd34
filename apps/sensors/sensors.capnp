# The sensors app's records: readings as sensors post them, the gaps the sequence stage reports,
# and the per-sensor one-minute averages.
@0xa1b2c3d4e5f60718;

struct Reading {
  sensor @0 :Text;   # who sent it: the record key, so a sensor's readings stay in one partition
  seq @1 :UInt32;    # the sensor's own sequence number, from 0
  at @2 :Int64;      # when it was measured, ms since the Unix epoch
  value @3 :Float64;
}

struct Gap {         # ids of one sensor that never arrived in time
  origin @0 :Text;
  first @1 :UInt64;
  last @2 :UInt64;
  count @3 :UInt64;
}

struct Minute {      # one sensor's readings over one minute of event time
  key @0 :Text;      # the sensor
  start @1 :Int64;
  end @2 :Int64;
  value @3 :Float64; # their average
  count @4 :UInt64;
}
