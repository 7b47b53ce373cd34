# Every kind of Cap'n Proto type, for tests/runtime/json/json_test.cpp.
@0xc3a1f7d2b9e84a61;

enum Color {
  red @0;
  green @1;
  blueSky @2;
}

struct Item {
  name @0 :Text;
  price @1 :Float64;
  quantity @2 :UInt32;
}

struct Node {
  value @0 :Int32;
  next @1 :Node;
}

interface Service {}

struct All {
  nothing @0 :Void;
  flag @1 :Bool;
  i8 @2 :Int8;
  i16 @3 :Int16;
  i32 @4 :Int32;
  i64 @5 :Int64;
  u8 @6 :UInt8;
  u16 @7 :UInt16;
  u32 @8 :UInt32;
  u64 @9 :UInt64;
  f32 @10 :Float32;
  f64 @11 :Float64;
  text @12 :Text;
  bytes @13 :Data;
  color @14 :Color;
  ints @15 :List(Int32);
  texts @16 :List(Text);
  items @17 :List(Item);
  nested @18 :List(List(UInt8));
  colors @19 :List(Color);
  bools @20 :List(Bool);
  blobs @21 :List(Data);
  floats @22 :List(Float64);
  voids @23 :List(Void);
  item @24 :Item;
  node @25 :Node;
  union {
    none @26 :Void;
    count @27 :UInt16;
    label @28 :Text;
    point :group {
      x @29 :Int32;
      y @30 :Int32;
    }
  }
  shape :union {
    circle @31 :Float64;
    square @32 :Float64;
    empty @33 :Void;
  }
  pair :group {
    left @34 :Int32;
    right @35 :Text;
  }
  any @36 :AnyPointer;
  service @37 :Service;
  answer @38 :Int32 = 42;
  greeting @39 :Text = "hello";
}

# Item as a later version of the schema sees it: fields an Item message does not have read as
# their defaults.
struct ItemV2 {
  name @0 :Text;
  price @1 :Float64;
  quantity @2 :UInt32;
  stock @3 :Int64 = 7;
  note @4 :Text = "n/a";
  fresh @5 :Bool = true;
  ratio @6 :Float32 = 0.5;
}
