// What the JSON decoder and encoder know of a schema, worked out once: for every struct (and
// group) type reachable from the root, its fields with their types flattened into a small enum,
// a hash table from field name to field, and each field's key as the encoder writes it.
//
// Lifetime: a schema_tables owns every table, type and enum description it hands out; they stay
// put (deques) until it is destroyed. The capnp schemas they refer to must outlive it.
#pragma once

#include <capnp/dynamic.h>
#include <capnp/schema.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe::json_detail {

enum class kind : uint8_t {
  void_, bool_,
  int8, int16, int32, int64, uint8, uint16, uint32, uint64,
  float32, float64,
  text, data, list, struct_, enum_,
  any_pointer, capability,
};

// "Int32", "Text", "List(Int32)": a type as the schema language writes it, for messages.
const char* kind_name(kind k);

struct struct_table;
struct enum_table;

struct type_desc {
  kind what = kind::void_;
  const struct_table* st = nullptr; // struct_: its table
  const enum_table* en = nullptr;   // enum_: its enumerants
  const type_desc* elem = nullptr;  // list: the element type
};

struct enum_table {
  capnp::EnumSchema schema;
  std::vector<std::string> names;     // by numeric value
  std::string choices;                // "red, green, blueSky" for messages
  // The value of an enumerant named `name`, or -1.
  int find(std::string_view name) const;
};

struct field_desc {
  capnp::StructSchema::Field field;
  std::string name;
  std::string key;            // the encoder's `"name":`, escaped
  type_desc type;             // for a group: struct_ with the group's table
  bool is_group = false;
  bool in_union = false;      // a member of this struct's (unnamed) union
  // Where a non-group field lives (Cap'n Proto's layout, from the schema): its data-section
  // offset in units of its own size (bits for Bool), or its pointer-section index; the bits of
  // its default value, which the wire format XORs into stored values; its discriminant.
  uint32_t offset = 0;
  uint64_t default_bits = 0;
  uint16_t discriminant = 0;
};

struct struct_table {
  capnp::StructSchema schema;
  std::vector<field_desc> fields; // in schema order (getFields)
  bool has_union = false;
  uint32_t discriminant_offset = 0; // in 16-bit units, when has_union
  // Index into `fields` of the field named `name`, or -1. `hint` is tried first: the field
  // after the previous one, since JSON usually lists fields in schema order.
  int find(std::string_view name, size_t hint) const;

  std::vector<int32_t> slots; // open addressing, power-of-two size; -1 is empty
};

class schema_tables {
public:
  explicit schema_tables(capnp::StructSchema root);
  schema_tables(const schema_tables&) = delete;
  schema_tables& operator=(const schema_tables&) = delete;

  const struct_table& root() const { return *root_; }

private:
  const struct_table* table_for(capnp::StructSchema s);
  const enum_table* enum_for(capnp::EnumSchema s);
  type_desc describe(capnp::Type t);
  void fill(struct_table& t);

  struct schema_hash {
    size_t operator()(const capnp::Schema& s) const { return s.hashCode(); }
  };
  std::deque<struct_table> structs_;
  std::deque<enum_table> enums_;
  std::deque<type_desc> elements_;
  std::unordered_map<capnp::Schema, struct_table*, schema_hash> struct_index_;
  std::unordered_map<capnp::Schema, enum_table*, schema_hash> enum_index_;
  std::vector<struct_table*> to_fill_;
  const struct_table* root_ = nullptr;
};

} // namespace troupe::json_detail
