# The quickstart app's payloads: an order line as it comes in, and the same order priced.
@0xea411d9df66f5a8e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("quickstart");

# What the source reads from orders.jsonl (edges that name no type carry it: schema.payload).
struct Order {
  id @0 :UInt32;
  customer @1 :Text;
  item @2 :Text;
  quantity @3 :UInt32;
  unitPrice @4 :Float64;   # in the shop's currency
}

# What the price stage emits (edges.priced.type in app.yaml).
struct PricedOrder {
  id @0 :UInt32;
  customer @1 :Text;
  item @2 :Text;
  quantity @3 :UInt32;
  unitPrice @4 :Float64;
  discount @5 :Float64;      # 0.1 for 10 or more items
  total @6 :Float64;         # quantity * unitPrice, less the discount
  customerTotal @7 :Float64; # the customer's running total
}
