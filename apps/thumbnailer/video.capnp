@0xb3c4d5e6f7a80912;

# One video to take a thumbnail of: where it is, and the name its thumbnail gets.
struct Video {
  path @0 :Text;
  name @1 :Text;   # the file's name without its extension
}
