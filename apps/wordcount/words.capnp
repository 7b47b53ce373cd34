# Word count: lines of text in, one count per distinct word out.
@0xa8c3e5f71b2d4960;

struct Line {
  text @0 :Text;
}

struct Count {
  word @0 :Text;
  count @1 :UInt64;
}
