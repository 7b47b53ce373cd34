// http_source: other programs hand the app records over HTTP, and an answer means they are
// committed.
//
//   POST <path>   a body of JSON lines (one object per line, blank lines skipped), or, with
//                 `Content-Type: application/json`, one JSON object (which may span lines)
//   200           every record of the body is committed (at `sync`: on disk, fsynced), with
//                 {"records":N,"duplicates":D,"origin":"<stage>","first_seq":A,"last_seq":B}:
//                 the ids the records got (origin and sequence numbers A..B, as downstream
//                 stages, dead letters and `troupectl peek` name them)
//   400           a line is not a valid record for the edge's struct: {"error":..,"line":N};
//                 nothing of that body is committed
//   401           `token` is set and the request does not carry `Authorization: Bearer <token>`
//   503           nothing of the body is committed: the stage's input waited full for longer
//                 than `full_wait` (backpressure from downstream), the stage is paused or
//                 stopping; `Retry-After` says when to try again
//   504           the body was handed to a step but its commit was not confirmed within
//                 `commit_timeout`: it may still commit. Retry with the same Idempotency-Key.
//
// Idempotency: a request with an `Idempotency-Key` header commits once. The key is kept with the
// step that commits the body, and a request with a key already seen gets the first one's answer
// (with `Idempotent-Replayed: true`) and commits nothing, however often it is retried, and also
// while the first is still being committed. With `id_field`, each record is deduplicated by that
// field's value instead: a record whose id was seen is counted in "duplicates" and not emitted.
// Both remember the last `idempotency_window` keys (default 100000), in the stage's state in
// LMDB: a restart forgets none of them.
//
// The records of a request become records of one step, in body order, so they commit together;
// requests waiting at once share a step (group commit). A request without an Idempotency-Key that
// got no answer (a timeout, a dropped connection, a restart of the stage) may or may not have
// committed: sending it again may commit it twice. That is the at-least-once of every HTTP
// producer without a key; with a key, or an id_field, it is exactly once.
//
// Threads: httplib's pool (`max_connections` threads, one per open connection) decodes the
// bodies into Cap'n Proto messages and waits; the stage's produce() only copies the decoded
// records into its step, so decoding uses every core.
#include "http_source.hpp"

#include "intake_params.hpp"

#include <capnp/message.h>
#include <capnp/orphan.h>
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace troupe {

struct http_source::settings {
  std::string stage;
  std::string host;
  int port = 8080;
  std::string path = "/";
  std::string token;
  uint64_t max_body = 16u << 20;
  std::chrono::milliseconds full_wait{5000};
  std::chrono::milliseconds commit_timeout{30000};
  uint64_t max_waiting = 65536; // records decoded and waiting for a step
  uint64_t window = 100000;
  unsigned connections = 64;
  capnp::StructSchema schema;
  json_decode_options options;
  std::optional<field_path> key, id_field;
};

struct http_source::request {
  capnp::MallocMessageBuilder arena; // owns the decoded records
  std::vector<capnp::Orphan<capnp::DynamicStruct>> records;
  std::vector<std::string> keys; // record keys, when `key` is set
  std::vector<std::string> ids;  // dedupe ids, when `id_field` is set
  std::vector<uint64_t> lines;   // each record's line in the body
  std::string idempotency_key;

  enum class phase { waiting, taken, answered } at = phase::waiting;
  int status = 0;
  std::string body;
  bool replayed = false;
  std::condition_variable done;
};

struct http_source::intake {
  std::mutex m;
  std::condition_variable room; // waiting_records went down
  std::deque<std::shared_ptr<request>> waiting;
  uint64_t waiting_records = 0;
  std::unordered_set<request*> taken; // handed to a step, not yet answered (handlers own them)
  bool accepting = false;
  std::function<void()> wake; // the stage's waker
  std::vector<std::unique_ptr<json_decoder>> decoders; // spare ones for handler threads

  // With `m` held. Only the first answer counts.
  void answer(request& r, int status, std::string body, bool replayed = false) {
    if (r.at == request::phase::answered)
      return;
    r.at = request::phase::answered;
    r.status = status;
    r.body = std::move(body);
    r.replayed = replayed;
    taken.erase(&r);
    r.done.notify_one();
  }
};

namespace {

std::string error_body(std::string_view message, std::optional<uint64_t> line = std::nullopt) {
  std::string out = "{\"error\":";
  if (!append_json_string(out, message))
    out += "\"(the message is not valid UTF-8)\"";
  if (line)
    out += ",\"line\":" + std::to_string(*line);
  out += "}\n";
  return out;
}

bool same_token(std::string_view given, std::string_view expected) {
  // Constant time in the length of the expected token: no early exit on the first difference.
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i)
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

bool blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

} // namespace

struct http_source::server {
  httplib::Server http;
  std::thread serving;
  std::string address; // as bound

  ~server() {
    http.stop();
    if (serving.joinable())
      serving.join();
  }
};

http_source::http_source(const params& p) {
  auto s = std::make_shared<settings>();
  auto address = read_listen_address(p, "127.0.0.1:8080");
  s->host = address.host;
  s->port = address.port;
  s->path = p.get_string("path", "/");
  if (s->path.empty() || s->path.front() != '/')
    p.fail("path", "must start with '/', found '" + s->path + "'");
  s->token = p.get_string("token", "");
  s->max_body = p.get_u64("max_body_bytes", s->max_body);
  s->full_wait = p.get_duration("full_wait", s->full_wait);
  s->commit_timeout = p.get_duration("commit_timeout", s->commit_timeout);
  s->max_waiting = p.get_u64("max_waiting_records", s->max_waiting);
  s->window = p.get_u64("idempotency_window", s->window);
  s->connections = static_cast<unsigned>(p.get_u64("max_connections", s->connections));
  if (s->max_body == 0)
    p.fail("max_body_bytes", "must be at least 1");
  if (s->max_waiting == 0)
    p.fail("max_waiting_records", "must be at least 1");
  if (s->window == 0)
    p.fail("idempotency_window", "must be at least 1");
  if (s->connections == 0 || s->connections > 4096)
    p.fail("max_connections", "must be 1 to 4096");
  auto intake = read_json_intake(p, true);
  s->schema = intake.schema;
  s->options = std::move(intake.options);
  s->key = std::move(intake.key);
  s->id_field = std::move(intake.id_field);
  settings_ = std::move(s);
}

http_source::~http_source() {
  stop_serving("the stage restarted before this body's commit was confirmed");
}

namespace {

struct body_error {
  std::string message;
  std::optional<uint64_t> line;
};

// Decodes a body into `r`; the error, with its line, if a record is not valid.
std::optional<body_error> decode_body(const http_source::settings& cfg, json_decoder& decoder,
                                     const httplib::Request& req, http_source::request& r);

} // namespace

void http_source::open(context& ctx) {
  intake_ = std::make_shared<intake>();
  intake_->wake = ctx.waker();
  intake_->accepting = true;
  auto srv = std::make_unique<server>();
  auto& http = srv->http;
  auto cfg = settings_;
  auto in = intake_;
  http.new_task_queue = [cfg] { return new httplib::ThreadPool(cfg->connections); };
  http.set_payload_max_length(cfg->max_body);
  http.set_keep_alive_max_count(1000);
  http.set_tcp_nodelay(true); // an answer is one small write: never hold it back (Nagle)
  // An idle keep-alive connection holds one of the pool's threads, and a stop waits for them.
  http.set_keep_alive_timeout(1);
  // SO_REUSEADDR only (httplib's default adds SO_REUSEPORT, with which two nodes could share a
  // port and each other's requests).
  http.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http.set_error_handler(httplib::Server::HandlerWithResponse{[](const httplib::Request& req,
                                                                 httplib::Response& res) {
    if (!res.body.empty())
      return httplib::Server::HandlerResponse::Unhandled;
    std::string why = res.status == 404   ? "no such path: " + req.path
                      : res.status == 413 ? "the body is larger than max_body_bytes"
                                          : "request refused";
    res.set_content(error_body(why), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }});
  auto not_post = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "POST");
    res.set_content(error_body("POST records to this path"), "application/json");
  };
  http.Get(cfg->path, not_post);
  http.Put(cfg->path, not_post);
  http.Delete(cfg->path, not_post);
  http.Post(cfg->path, [cfg, in](const httplib::Request& req, httplib::Response& res) {
    auto reply = [&](int status, std::string body) {
      res.status = status;
      res.set_content(std::move(body), "application/json");
    };
    if (!cfg->token.empty()) {
      auto given = req.get_header_value("Authorization");
      if (given.rfind("Bearer ", 0) != 0 || !same_token(given.substr(7), cfg->token)) {
        res.set_header("WWW-Authenticate", "Bearer");
        reply(401, error_body(given.empty() ? "this source needs its token "
                                              "(Authorization: Bearer <token>)"
                                            : "the token given is not this source's"));
        return;
      }
    }
    auto r = std::make_shared<request>();
    r->idempotency_key = req.get_header_value("Idempotency-Key");
    if (r->idempotency_key.size() > 200) {
      reply(400, error_body("the Idempotency-Key is longer than 200 bytes"));
      return;
    }
    std::unique_ptr<json_decoder> decoder;
    {
      std::lock_guard<std::mutex> lock{in->m};
      if (!in->decoders.empty()) {
        decoder = std::move(in->decoders.back());
        in->decoders.pop_back();
      }
    }
    if (!decoder)
      decoder = std::make_unique<json_decoder>(cfg->schema, cfg->options);
    auto bad = decode_body(*cfg, *decoder, req, *r);
    std::unique_lock<std::mutex> lock{in->m};
    in->decoders.push_back(std::move(decoder));
    if (bad) {
      reply(400, error_body(bad->message, bad->line));
      return;
    }
    auto n = r->records.size();
    auto busy = [&](const std::string& why) {
      res.set_header("Retry-After", "1");
      reply(503, error_body(why + "; nothing of this body was committed: send it again"));
    };
    // Room for the body among the records waiting for a step; a body bigger than the whole
    // room goes alone.
    auto deadline = std::chrono::steady_clock::now() + cfg->full_wait;
    bool room = in->room.wait_until(lock, deadline, [&] {
      return !in->accepting || in->waiting_records == 0 ||
             in->waiting_records + n <= cfg->max_waiting;
    });
    if (!in->accepting) {
      busy("the stage is stopping or restarting");
      return;
    }
    if (!room) {
      busy("the stage's input stayed full for " + std::to_string(cfg->full_wait.count()) +
           " ms (its consumers are behind, or it is paused)");
      return;
    }
    in->waiting.push_back(r);
    in->waiting_records += n;
    lock.unlock();
    in->wake();
    lock.lock();
    auto until = std::chrono::steady_clock::now() + cfg->commit_timeout;
    r->done.wait_until(lock, until, [&] { return r->at == request::phase::answered; });
    if (r->at == request::phase::waiting) { // never taken into a step: take it back
      auto it = std::find(in->waiting.begin(), in->waiting.end(), r);
      if (it != in->waiting.end()) {
        in->waiting.erase(it);
        in->waiting_records -= n;
        in->room.notify_all();
      }
      in->answer(*r, 0, {});
      busy("no step took this body within commit_timeout (" +
           std::to_string(cfg->commit_timeout.count()) + " ms): the stage is paused or stalled");
      return;
    }
    if (r->at == request::phase::taken) {
      in->answer(*r, 0, {}); // the commit's answer, if it comes, goes nowhere
      reply(504, error_body("this body's commit was not confirmed within commit_timeout (" +
                            std::to_string(cfg->commit_timeout.count()) +
                            " ms); it may still commit: send it again with the same "
                            "Idempotency-Key to have it committed once"));
      return;
    }
    if (r->replayed)
      res.set_header("Idempotent-Replayed", "true");
    if (r->status == 503)
      res.set_header("Retry-After", "1");
    reply(r->status, std::move(r->body));
  });

  // Bind; a predecessor that just stopped may still hold the port for a moment.
  bool bound = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{2};
  int port = cfg->port;
  for (;;) {
    if (cfg->port == 0) {
      port = http.bind_to_any_port(cfg->host);
      bound = port > 0;
    } else {
      bound = http.bind_to_port(cfg->host, cfg->port);
    }
    if (bound || std::chrono::steady_clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  auto host = cfg->host.find(':') != std::string::npos ? "[" + cfg->host + "]" : cfg->host;
  if (!bound)
    throw permanent_error("cannot listen on " + host + ":" + std::to_string(cfg->port) +
                          " (address): the port is taken or the address is not this machine's");
  srv->address = host + ":" + std::to_string(port);
  auto* raw = srv.get();
  srv->serving = std::thread([raw] { raw->http.listen_after_bind(); });
  // httplib 0.11's stop() does nothing until the listening thread has begun: a stop right after
  // this would be lost and its join hang in accept(). It begins at once; wait for it.
  for (int i = 0; i < 5000 && !raw->http.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  server_ = std::move(srv);
  ctx.log_info("listening on http://" + server_->address + cfg->path +
               " (POST JSON lines; answered once committed)");
}

void http_source::close(context&) {
  stop_serving("the node is stopping");
}

void http_source::stop_serving(const char* why) {
  if (intake_) {
    std::lock_guard<std::mutex> lock{intake_->m};
    intake_->accepting = false;
    auto retry = std::string{why} + "; nothing of this body was committed: send it again";
    for (auto& r : intake_->waiting)
      intake_->answer(*r, 503, error_body(retry));
    intake_->waiting.clear();
    intake_->waiting_records = 0;
    auto unsure = std::string{why} + "; it may have committed: send it again with the same "
                                     "Idempotency-Key to have it committed once";
    for (auto* r : std::vector<request*>(intake_->taken.begin(), intake_->taken.end()))
      intake_->answer(*r, 503, error_body(unsure));
    for (auto& r : carry_)
      intake_->answer(*r, 503, error_body(unsure));
    carry_.clear();
    intake_->room.notify_all();
  }
  server_.reset(); // stops the listener and joins its threads, which all have their answers
}

produce_result http_source::produce(context& ctx, size_t max_items) {
  // Requests a failed attempt of this step took are taken again first (carry_): a step that
  // threw committed nothing of them.
  auto& batch = carry_;
  bool more = false;
  {
    std::lock_guard<std::mutex> lock{intake_->m};
    more = take_waiting(intake_->waiting, intake_->waiting_records, batch, max_items,
                        [&](request& r) {
                          r.at = request::phase::taken;
                          intake_->taken.insert(&r);
                        });
    intake_->room.notify_all();
  }
  auto state = ctx.state();
  for (auto& r : batch) {
    auto in = intake_;
    if (!r->idempotency_key.empty()) {
      if (auto first = state.get("key/" + r->idempotency_key)) {
        ctx.on_commit([in, r, body = std::move(*first)]() mutable {
          std::lock_guard<std::mutex> lock{in->m};
          in->answer(*r, 200, std::move(body), true);
        });
        continue;
      }
    }
    uint64_t count = 0, duplicates = 0, first = 0, last = 0;
    for (size_t i = 0; i < r->records.size(); ++i) {
      if (settings_->id_field) {
        auto id = "id/" + r->ids[i];
        if (state.get(id)) {
          ++duplicates;
          continue;
        }
        state.put(id, "");
        remember(ctx, id);
      }
      auto out = ctx.emit("out");
      if (settings_->key)
        out.key(r->keys[i]);
      out.source_position(r->lines[i]);
      last = out.seq();
      if (count++ == 0)
        first = last;
      out.payload_any().setAs<capnp::DynamicStruct>(r->records[i].getReader());
    }
    std::string body = "{\"records\":" + std::to_string(count) +
                       ",\"duplicates\":" + std::to_string(duplicates) + ",\"origin\":";
    append_json_string(body, ctx.stage_name());
    if (count > 0)
      body += ",\"first_seq\":" + std::to_string(first) + ",\"last_seq\":" + std::to_string(last);
    else
      body += ",\"first_seq\":null,\"last_seq\":null";
    body += "}\n";
    if (!r->idempotency_key.empty()) {
      auto key = "key/" + r->idempotency_key;
      state.put(key, body);
      remember(ctx, key);
    }
    ctx.on_commit([in, r, body = std::move(body)]() mutable {
      std::lock_guard<std::mutex> lock{in->m};
      in->answer(*r, 200, std::move(body));
    });
  }
  batch.clear(); // in the step now: its hooks answer them
  return more ? produce_result::more() : produce_result::idle(100); // the waker cuts it short
}

// The dedupe window: keys in the order they were first seen ("seen/<n>" -> key), the oldest
// forgotten once there are more than idempotency_window.
void http_source::remember(context& ctx, const std::string& key) {
  remember_in_window(ctx.state(), key, settings_->window);
}

namespace {

std::optional<body_error> decode_body(const http_source::settings& cfg, json_decoder& decoder,
                                     const httplib::Request& req, http_source::request& r) {
  std::string_view body = req.body;
  bool one_object = req.get_header_value("Content-Type").rfind("application/json", 0) == 0;
  auto take = [&](std::string_view text, uint64_t line) -> std::optional<body_error> {
    auto where = one_object ? std::string{"the body"} : "line " + std::to_string(line);
    auto at = one_object ? std::nullopt : std::optional<uint64_t>{line};
    auto orphan = r.arena.getOrphanage().newOrphan(cfg.schema);
    if (auto err = decoder.decode(text, orphan.get()))
      return body_error{where + (err->field.empty() ? ": " : ", ") + err->to_string(), at};
    auto value = orphan.getReader();
    for (auto* path : {&cfg.key, &cfg.id_field}) {
      if (!*path)
        continue;
      auto v = (*path)->get(value);
      if (!v) // required, so only an unset union member gets here
        return body_error{where + ", field '" + (*path)->text() + "': missing", at};
      (path == &cfg.key ? r.keys : r.ids).push_back(key_bytes(*v));
    }
    r.records.push_back(std::move(orphan));
    r.lines.push_back(line);
    return std::nullopt;
  };
  if (one_object) {
    if (auto bad = take(body, 1))
      return bad;
    return std::nullopt;
  }
  uint64_t line = 0;
  size_t at = 0;
  if (body.substr(0, 3) == "\xEF\xBB\xBF") // a byte-order mark
    at = 3;
  while (at < body.size()) {
    auto end = body.find('\n', at);
    if (end == std::string_view::npos)
      end = body.size();
    auto text = body.substr(at, end - at);
    ++line;
    at = end + 1;
    if (blank(text))
      continue;
    if (text.back() == '\r')
      text.remove_suffix(1);
    if (auto bad = take(text, line))
      return bad;
  }
  if (r.records.empty())
    return body_error{"the body holds no record (send JSON lines: one object per line)", {}};
  return std::nullopt;
}

} // namespace

} // namespace troupe
