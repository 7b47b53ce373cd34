# The struct the JSON fuzz target decodes into: one field of every kind the decoder handles.
@0xd6f1c0a2b3e4f501;

struct Everything {
  flag @0 :Bool;
  small @1 :Int8;
  count @2 :UInt64;
  signed @3 :Int64;
  ratio @4 :Float32;
  amount @5 :Float64;
  name @6 :Text;
  blob @7 :Data;
  color @8 :Color;
  tags @9 :List(Text);
  numbers @10 :List(Int32);
  inner @11 :Inner;
  items @12 :List(Inner);
  choice :union {
    none @13 :Void;
    word @14 :Text;
    level @15 :UInt16;
  }

  enum Color { red @0; green @1; blue @2; }
  struct Inner { id @0 :UInt32; label @1 :Text; deeper @2 :Inner; }
}
