@0xa63942631802b8c7;

# One sale, as the shops' tills write it: the amount in cents, so that totals are exact.
struct Sale {
  id @0 :Text;
  store @1 :Text;
  product @2 :Text;
  cents @3 :Int64;
  at @4 :Text;         # ISO 8601, as written; the report does not read it
}

# A line of the report: a store and its figure (revenue in cents, or number of sales).
struct Total {
  store @0 :Text;
  value @1 :Int64;
}
