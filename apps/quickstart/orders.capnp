# The quickstart app's payload: one order line.
@0xea411d9df66f5a8e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("quickstart");

struct Order {
  id @0 :UInt32;
  customer @1 :Text;
  item @2 :Text;
  quantity @3 :UInt32;
  unitPrice @4 :Float64;   # in the shop's currency
  total @5 :Float64;       # set by the price stage
  discount @6 :Float64;    # set by the price stage: 0.1 for 10 or more items
  customerTotal @7 :Float64; # set by the price stage: the customer's running total
}
