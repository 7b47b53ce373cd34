#include "aggregate.hpp"

#include <algorithm>
#include <cstring>

namespace troupe {

bool is_integer_type(capnp::Type t) { return is_integer(t.which()); }

namespace {
bool is_float(capnp::Type t) {
  return t.which() == capnp::schema::Type::FLOAT32 || t.which() == capnp::schema::Type::FLOAT64;
}
} // namespace

bool is_text_type(capnp::Type t) { return t.which() == capnp::schema::Type::TEXT; }
bool is_number_type(capnp::Type t) { return is_integer_type(t) || is_float(t); }

capnp::StructSchema output_struct(const params& p, const char* who) {
  auto s = p.output_schema("out");
  if (!s)
    p.fail("type", std::string(who) + " builds records, so its output edge must carry a struct "
                                      "(edges.<edge>.type, or schema.payload)");
  return *s;
}

capnp::StructSchema::Field field_param(const params& p, capnp::StructSchema s,
                                       const std::string& key, const std::string& fallback,
                                       bool (*fits)(capnp::Type), const char* wanted) {
  auto name = p.get_string(key, fallback);
  auto f = s.findFieldByName(name);
  if (f == nullptr)
    p.fail(key, std::string(s.getShortDisplayName().cStr()) + " has no field '" + name +
                  "' (set " + key + ")");
  auto field = *kj::_::readMaybe(f);
  if (!fits(field.getType()))
    p.fail(key, "'" + name + "' must be " + wanted);
  return field;
}

aggregator::aggregator(const params& p, const char* who, capnp::StructSchema out,
                       bool with_count)
    : name_(p.get_string("op")), with_count_(with_count) {
  if (name_ == "count") op_ = op::count;
  else if (name_ == "sum") op_ = op::sum;
  else if (name_ == "min") op_ = op::min;
  else if (name_ == "max") op_ = op::max;
  else if (name_ == "avg") op_ = op::avg;
  else p.fail("op", "expected count, sum, min, max or avg, found '" + name_ + "'");
  if (op_ != op::count) {
    if (!p.has("field"))
      p.fail("op", "'" + name_ + "' folds a field: set field: <path>");
    try {
      field_.emplace(input_struct(p, who), p.get_string("field"));
    } catch (const std::invalid_argument& e) {
      p.fail("field", e.what());
    }
    if (!is_number_type(field_->type()))
      p.fail("field", "'" + field_->text() + "' must be a number field to " + name_);
    int_fold_ = is_integer_type(field_->type());
  } else {
    int_fold_ = true;
  }
  integral_ = int_fold_ && op_ != op::avg;
  value_field_ = field_param(p, out, "value_field", "value",
                             integral_ ? is_number_type : is_float,
                             integral_ ? "a number field" : "a Float32 or Float64 field");
}

// 8 bytes (an int64 or a double), then the count when counted(): 16.
std::string aggregator::encode(const value& v) const {
  std::string out(counted() ? 16 : 8, '\0');
  if (int_fold_)
    std::memcpy(&out[0], &v.i, 8);
  else
    std::memcpy(&out[0], &v.f, 8);
  if (counted())
    std::memcpy(&out[8], &v.n, 8);
  return out;
}

std::optional<aggregator::value> aggregator::decode(std::string_view acc) const {
  if (acc.size() != (counted() ? 16u : 8u))
    return std::nullopt;
  value v;
  if (int_fold_)
    std::memcpy(&v.i, acc.data(), 8);
  else
    std::memcpy(&v.f, acc.data(), 8);
  if (counted())
    std::memcpy(&v.n, acc.data() + 8, 8);
  return v;
}

std::string aggregator::fold(std::string& acc, const record& r, std::string_view key) const {
  bool had = !acc.empty();
  auto before = decode(acc);
  if (had && !before)
    throw std::logic_error(name_ + ": the state of key '" + std::string(key) +
                           "' is not an aggregate");
  value a = before.value_or(value{});
  if (op_ == op::count) {
    ++a.i;
    ++a.n;
    acc = encode(a);
    return {};
  }
  auto v = field_->read(r.payload_any().getAs<capnp::AnyStruct>());
  if (!v)
    return "the record has no field '" + field_->text() + "'";
  if (int_fold_) { // exactly, in 64-bit signed integers; what does not fit is refused
    if (v->k == field_value::kind::unsigned_integer && v->u > uint64_t(INT64_MAX))
      return field_->text() + " = " + std::to_string(v->u) +
             " does not fit a 64-bit signed integer";
    int64_t x = v->k == field_value::kind::unsigned_integer ? static_cast<int64_t>(v->u) : v->i;
    bool adds = op_ == op::sum || op_ == op::avg;
    int64_t sum = 0;
    if (had && adds && __builtin_add_overflow(a.i, x, &sum))
      return "adding " + std::to_string(x) + " to the " + (op_ == op::avg ? "sum" : "total") +
             " of key '" + std::string(key) + "' (" + std::to_string(a.i) +
             ") overflows a 64-bit signed integer";
    a.i = !had ? x : adds ? sum : op_ == op::min ? std::min(a.i, x) : std::max(a.i, x);
  } else {
    double x = v->k == field_value::kind::floating ? v->f
               : v->k == field_value::kind::unsigned_integer ? static_cast<double>(v->u)
                                                             : static_cast<double>(v->i);
    a.f = !had ? x : op_ == op::min ? std::min(a.f, x) : op_ == op::max ? std::max(a.f, x) : a.f + x;
  }
  ++a.n;
  acc = encode(a);
  return {};
}

void aggregator::write(capnp::DynamicStruct::Builder out, std::string_view acc) const {
  auto a = decode(acc);
  if (!a)
    throw std::logic_error(name_ + ": a state that is not an aggregate");
  if (integral_)
    out.set(value_field_, a->i);
  else if (op_ == op::avg && int_fold_) // an exact integer sum, divided once
    out.set(value_field_, a->n ? static_cast<double>(static_cast<long double>(a->i) /
                                                     static_cast<long double>(a->n))
                               : 0.0);
  else if (op_ == op::avg)
    out.set(value_field_, a->n ? a->f / static_cast<double>(a->n) : 0.0);
  else
    out.set(value_field_, a->f);
}

uint64_t aggregator::count(std::string_view acc) const {
  auto a = decode(acc);
  return a && counted() ? a->n : 0;
}

} // namespace troupe
