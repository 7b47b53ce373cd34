# Imports from /usr/include, which the loader always adds to the import path.
@0xb0eb5d179cc384e5;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("troupe::test");

struct Tagged {
  name @0 :Text;
}
