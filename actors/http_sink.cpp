// http_sink: each record (or `per_request` records) goes out as one POST, and the step that
// consumed them commits only once the server answered 2xx. So delivery is at least once: a crash
// between the answer and the commit, or an answer lost on the way, sends the request again, with
// the same Idempotency-Key, which the server uses to take it once (as Stripe's API does).
//
// The key is made from the ids of the records the request carries: "<origin>:<seq>" of the first,
// and "+<count>" after it for a batch. With `per_request: 1` (the default) a record's key never
// changes. A batch is cut from the records a step holds, so after a restart a record may travel
// in a batch cut differently, under another key; `envelope: true` puts each record's origin and
// seq in its line, for a server that dedupes record by record.
//
// How an answer counts:
// - 2xx: delivered.
// - no answer (refused, reset, timed out), 408, 429, 502, 503, 504: the server is down or busy,
//   not the records' fault: a transient_error, retried with a growing delay for as long as it
//   takes, and no record is dead-lettered for it.
// - 401, 403: the token is refused: no retry can heal that, so the stage stops (permanent_error)
//   and `troupe run` exits 1 saying so.
// - any other status: the records' fault (a 400 for a record the server will not take, a 500 it
//   crashes on): it counts against them, as a throw does, and after `retry.max_attempts` each goes
//   to the dead-letter log with the status and the start of the answer's body.
// Requests a step already had answered 2xx are not sent again when a later one of the step fails:
// the step takes only those records (context::take_only) and the failing one comes first in the
// next step. A step sends at most 64 requests, for at most about a second, then commits: a crash
// sends again at most what its step had sent.
#include "http_sink.hpp"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace troupe {

namespace {

constexpr size_t max_per_request = 10000;
constexpr size_t body_excerpt = 300; // bytes of an error answer's body kept in the message
// A step commits after this many requests or this long, whichever comes first: what a crash can
// make the sink send again.
constexpr size_t max_requests_per_step = 64;
constexpr auto max_step_time = std::chrono::seconds(1);

// The key's characters: a stage name is plain already; anything else is %-escaped.
void append_key_part(std::string& out, std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

std::string excerpt(const std::string& body) {
  std::string e = body.substr(0, body_excerpt);
  for (auto& c : e)
    if (c == '\n' || c == '\r')
      c = ' ';
  return body.size() > body_excerpt ? e + "..." : e;
}

// What went wrong when there is no answer, in words (httplib's names are one word each).
std::string no_answer(httplib::Error e) {
  switch (e) {
  case httplib::Error::Connection:
    return "cannot connect (nothing listens there, or no route to it)";
  case httplib::Error::ConnectionTimeout:
    return "no connection within `timeout`";
  case httplib::Error::Read:
    return "no answer: the connection broke, or no answer came within `timeout`";
  case httplib::Error::Write:
    return "the connection broke while the request was sent";
  default:
    return "no answer (" + httplib::to_string(e) + ")";
  }
}

bool server_busy(int status) {
  return status == 408 || status == 429 || status == 502 || status == 503 || status == 504;
}

} // namespace

http_sink::http_sink(const params& p)
    : url_(p.get_string("url")), token_(p.get_string("token", "")),
      per_request_(p.get_u64("per_request", 1)), json_(p.get_bool("envelope", false)),
      timeout_(p.get_duration("timeout", std::chrono::seconds(10))) {
  const std::string scheme = "http://";
  if (url_.rfind("https://", 0) == 0)
    p.fail("url", "https is not supported by this build (Debian's cpp-httplib without OpenSSL): "
                  "post to http:// on a TLS proxy (nginx, stunnel) in front of the server");
  if (url_.rfind(scheme, 0) != 0)
    p.fail("url", "must be http://HOST[:PORT][/PATH], not '" + url_ + "'");
  auto slash = url_.find('/', scheme.size());
  origin_ = url_.substr(0, slash);
  path_ = slash == std::string::npos ? "/" : url_.substr(slash);
  auto host_port = origin_.substr(scheme.size());
  auto colon = host_port.rfind(':');
  auto host = host_port.substr(0, colon);
  if (host.empty() || host_port.find_first_of("@?# ") != std::string::npos)
    p.fail("url", "must be http://HOST[:PORT][/PATH], not '" + url_ + "'");
  if (colon != std::string::npos) {
    auto port = host_port.substr(colon + 1);
    bool digits =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); });
    if (!digits || std::stoul(port) == 0 || std::stoul(port) > 65535)
      p.fail("url", "the port in '" + url_ + "' must be 1 to 65535");
  }
  if (path_.find_first_of(" \r\n#") != std::string::npos)
    p.fail("url", "the path in '" + url_ + "' may not hold spaces, line breaks or a fragment");
  if (per_request_ == 0 || per_request_ > max_per_request)
    p.fail("per_request", "records per request: 1 to " + std::to_string(max_per_request));
  if (token_.find_first_of("\r\n") != std::string::npos)
    p.fail("token", "may not hold a line break");
}

http_sink::~http_sink() = default;

void http_sink::open(context&) {
  client_ = std::make_unique<httplib::Client>(origin_);
  auto seconds = [](std::chrono::milliseconds d) { return static_cast<time_t>(d.count() / 1000); };
  auto micros = [](std::chrono::milliseconds d) {
    return static_cast<time_t>((d.count() % 1000) * 1000);
  };
  client_->set_connection_timeout(seconds(timeout_), micros(timeout_));
  client_->set_read_timeout(seconds(timeout_), micros(timeout_));
  client_->set_write_timeout(seconds(timeout_), micros(timeout_));
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true); // a request's headers and body are two writes: no 40 ms stall
}

void http_sink::close(context&) {
  client_.reset();
}

void http_sink::post(const batch& records, size_t from, size_t to) {
  body_.clear();
  for (size_t i = from; i < to; ++i) {
    json_.append(body_, records[i]);
    if (per_request_ > 1)
      body_ += '\n';
  }
  std::string key;
  append_key_part(key, records[from].origin());
  key += ':' + std::to_string(records[from].seq());
  if (per_request_ > 1)
    key += '+' + std::to_string(to - from);
  httplib::Headers headers{{"Idempotency-Key", key}};
  if (!token_.empty())
    headers.emplace("Authorization", "Bearer " + token_);
  const char* type = per_request_ > 1 ? "application/x-ndjson" : "application/json";
  auto res = client_->Post(path_.c_str(), headers, body_, type);
  auto what = "http_sink: POST " + url_ + " (Idempotency-Key " + key + ")";
  if (!res)
    throw transient_error(what + ": " + no_answer(res.error()) +
                          "; retried until the server answers");
  int status = res->status;
  if (status >= 200 && status < 300)
    return;
  auto answer = what + " answered " + std::to_string(status) +
                (res->body.empty() ? std::string{} : ": " + excerpt(res->body));
  if (server_busy(status))
    throw transient_error(answer + "; retried until the server takes it");
  if (status == 401 || status == 403)
    throw permanent_error(answer + " (the server refuses the sink's token: set `token`)");
  throw std::runtime_error(answer);
}

void http_sink::process_batch(context& ctx, const batch& records) {
  auto started = std::chrono::steady_clock::now();
  size_t requests = 0;
  for (size_t from = 0; from < records.size(); from += per_request_) {
    if (requests == max_requests_per_step ||
        (requests > 0 && std::chrono::steady_clock::now() - started > max_step_time)) {
      ctx.take_only(from); // commit what was answered: a crash repeats no more than this
      return;
    }
    try {
      post(records, from, std::min(records.size(), from + per_request_));
      ++requests;
    } catch (...) {
      if (from == 0)
        throw;
      ctx.take_only(from); // what was answered 2xx commits; the failing request comes next
      return;
    }
  }
}

void register_http_sink(registry& reg) {
  reg.add_sink<http_sink>("http_sink")
      .needs_payload_struct()
      .params({"url", "per_request", "envelope", "timeout", "token"})
      .blocking();
}

} // namespace troupe
