# A tiny payload schema for the config loader's tests.
@0xf46906b33b199e53;

struct Order {
  id @0 :UInt64;
  item @1 :Text;
  qty @2 :UInt32;

  struct Line {
    sku @0 :Text;
  }
}

enum Color {
  red @0;
  blue @1;
}
