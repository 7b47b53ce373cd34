# A sign-up as the front end posts it, one JSON object per line.
@0xd1a7e3b5c9f20486;

using Json = import "/capnp/compat/json.capnp";

enum Channel {
  email @0;
  sms @1;
}

struct Signup {
  id @0 :UInt64;
  email @1 :Text;
  name @2 :Text;
  optedIn @3 :Bool $Json.name("opted_in"); # the JSON key; schema names cannot hold '_'
  channel @4 :Channel;
}
