# Does not parse: the field type lacks its colon (line 5).
@0xbd48f6c2872d12f8;

struct Broken {
  id @0 UInt64;
}
