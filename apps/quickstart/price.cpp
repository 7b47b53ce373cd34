// The quickstart's custom stage: reads an Order, emits a PricedOrder, and keeps a running total
// per customer.
//
// - total = quantity * unitPrice, less 10% for 10 or more items;
// - the customer's running total lives in keyed state, committed with each step, so it is
//   exact after any number of crashes;
// - an order with quantity 0 is an error: the stage throws, the runtime retries it, then moves it
//   to this stage's dead-letter log and carries on with the rest;
// - orders above `review_above` (a parameter) also go to the optional "review" output.
#include "orders.capnp.h"

#include <troupe/stage.hpp>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {

class price_stage : public troupe::stage {
public:
  explicit price_stage(const troupe::params& p) : review_above_(p.get_double("review_above", 0)) {
    if (review_above_ < 0)
      p.fail("review_above", "must be >= 0 (0 turns reviews off)");
  }

  void process(troupe::context& ctx, const troupe::record& r) override {
    auto in = r.payload<quickstart::Order>();
    if (in.getQuantity() == 0)
      throw std::invalid_argument("order " + std::to_string(in.getId()) + " has quantity 0");

    double discount = in.getQuantity() >= 10 ? 0.1 : 0.0;
    double total = std::round(in.getQuantity() * in.getUnitPrice() * (1 - discount) * 100) / 100;

    auto name = in.getCustomer();                          // Text: UTF-8, may hold "\u0000"
    std::string customer(name.begin(), name.size());       // so copy by size, not by cStr()
    double customer_total = total + load(ctx, customer);
    store(ctx, customer, customer_total);

    auto out = ctx.emit("out").key(customer).init_payload<quickstart::PricedOrder>();
    out.setId(in.getId());
    out.setCustomer(in.getCustomer());
    out.setItem(in.getItem());
    out.setQuantity(in.getQuantity());
    out.setUnitPrice(in.getUnitPrice());
    out.setDiscount(discount);
    out.setTotal(total);
    out.setCustomerTotal(std::round(customer_total * 100) / 100);

    if (review_above_ > 0 && total > review_above_ && ctx.has_output("review"))
      ctx.forward("review", r);
  }

private:
  static double load(troupe::context& ctx, const std::string& customer) {
    auto v = ctx.state().get(customer);
    double x = 0;
    if (v && v->size() == sizeof x)
      std::memcpy(&x, v->data(), sizeof x);
    return x;
  }
  static void store(troupe::context& ctx, const std::string& customer, double x) {
    ctx.state().put(customer, std::string_view(reinterpret_cast<const char*>(&x), sizeof x));
  }

  double review_above_;
};

} // namespace

TROUPE_PLUGIN(reg) {
  reg.add_operator<price_stage>("quickstart.price")
    .outputs({"out"})
    .optional_outputs({"review"})
    .params({"review_above"})
    .reads<quickstart::Order>()
    .emits<quickstart::PricedOrder>("out")
    .emits<quickstart::Order>("review"); // the input, forwarded unchanged
}
