# A second payload schema for the config loader's tests: Invoice is only here, Order is in
# orders.capnp too.
@0xc3a1f0e2d4b59a71;

struct Invoice {
  id @0 :UInt64;
  amount @1 :Float64;
}

struct Order {
  ref @0 :Text;
}
