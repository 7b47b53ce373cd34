// tcp_source: other programs write JSON lines to a TCP socket; each line is answered, in the
// order of the lines, once its record is committed.
//
//   client:  {"id": 1, ...}\n{"id": 2, ...}\n...          one JSON object per line
//   source:  {"line":1,"seq":41}\n{"line":2,"error":"field 'id': expected ..."}\n...
//
// `line` counts the connection's lines from 1 (blank lines count, and get no answer); `seq` is
// the sequence number the record got (its origin is the stage's name, as downstream stages,
// dead letters and `troupectl peek` name it). A record's answer comes once its step committed
// (at `sync`: on disk). A line that is not a valid record for the edge's struct is answered
// with `error` and committed nowhere: the client has it. A line longer than max_line_bytes is
// answered with an error and the connection is closed (nothing after it can be framed). A UTF-8
// byte-order mark before the first line is skipped. A client past max_connections is answered
// {"error":...} and closed.
//
// A client that loses its connection (the node restarted) sends again the lines it has no
// answer for. Those may have committed: at least once. With `id_field`, a record whose id was
// committed before (within the last `idempotency_window` ids, kept in the stage's state) is
// answered {"line":N,"duplicate":true} and not emitted again: exactly once.
//
// Backpressure: while max_waiting_records decoded records wait for a step, no connection is
// read, and TCP's flow control holds the clients back. One thread serves every connection
// (poll); it decodes the lines, and the stage's produce() only copies records into its step.
#include "tcp_source.hpp"

#include "intake_params.hpp"

#include <capnp/message.h>
#include <capnp/orphan.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

namespace troupe {

struct tcp_source::settings {
  listen_address address;
  json_intake in;
  uint64_t max_line = 1u << 20;
  uint64_t max_waiting = 65536;
  uint64_t window = 100000; // ids remembered, with id_field
  unsigned connections = 64;
};

struct tcp_source::connection {
  int fd = -1;
  uint64_t lines = 0;       // lines read so far (server thread)
  std::string in;           // bytes after the last '\n' (server thread)
  bool read_closed = false; // the client shut its side, or framing was lost (server thread)

  // The answers, one per non-blank line, in line order; a step's commit fills its records'
  // in on the worker thread. Guarded by m, as what follows.
  struct answer {
    std::string text;
    bool ready = false;
  };
  std::mutex m;
  std::deque<answer> answers;
  uint64_t front = 0; // the ordinal of answers.front()
  std::string out;    // answers ready to be written, in order
  bool gone = false;  // closed: answers go nowhere

  // With m held: the ready answers at the front go out.
  void flush() {
    while (!answers.empty() && answers.front().ready) {
      out += answers.front().text;
      answers.pop_front();
      ++front;
    }
  }
};

struct tcp_source::chunk {
  std::shared_ptr<connection> conn;
  capnp::MallocMessageBuilder arena; // owns the decoded records
  std::vector<capnp::Orphan<capnp::DynamicStruct>> records;
  std::vector<std::string> keys;    // when `key` is set
  std::vector<std::string> ids;     // when `id_field` is set
  std::vector<uint64_t> lines, ords; // each record's line and answer ordinal
};

struct tcp_source::intake {
  std::mutex m;
  std::deque<std::shared_ptr<chunk>> waiting;
  uint64_t waiting_records = 0;
  std::function<void()> wake; // the stage's waker
  int event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); // wakes the server thread
  ~intake() { ::close(event_fd); }
  void poke() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(event_fd, &one, sizeof one);
  }
};

namespace {

std::string answer_text(uint64_t line, const char* what, std::string_view value, bool quoted) {
  std::string out = "{\"line\":" + std::to_string(line) + ",\"" + what + "\":";
  if (!quoted)
    out += value;
  else if (!append_json_string(out, value))
    out += "\"(the message is not valid UTF-8)\"";
  out += "}\n";
  return out;
}

} // namespace

struct tcp_source::server {
  std::shared_ptr<const settings> cfg;
  std::shared_ptr<intake> in;
  int listener = -1;
  std::atomic<bool> stopping{false};
  std::thread thread;
  std::vector<std::shared_ptr<connection>> conns; // server thread
  json_decoder decoder;

  server(std::shared_ptr<const settings> c, std::shared_ptr<intake> i)
      : cfg(std::move(c)), in(std::move(i)), decoder(cfg->in.schema, cfg->in.options) {}
  ~server() {
    stopping = true;
    in->poke();
    if (thread.joinable())
      thread.join();
    for (auto& c : conns)
      drop(*c);
    if (listener >= 0)
      ::close(listener);
  }

  void drop(connection& c) {
    std::lock_guard<std::mutex> lock{c.m};
    c.gone = true;
    ::close(c.fd);
  }

  void run() {
    std::vector<pollfd> fds;
    while (!stopping) {
      bool room;
      {
        std::lock_guard<std::mutex> lock{in->m};
        room = in->waiting_records < cfg->max_waiting;
      }
      fds.clear();
      fds.push_back({in->event_fd, POLLIN, 0});
      fds.push_back({listener, POLLIN, 0});
      for (auto& c : conns) {
        short events = room && !c->read_closed ? POLLIN : 0;
        std::lock_guard<std::mutex> lock{c->m};
        if (!c->out.empty())
          events |= POLLOUT;
        fds.push_back({c->fd, events, 0});
      }
      if (::poll(fds.data(), fds.size(), 200) < 0)
        continue; // EINTR
      if (fds[0].revents & POLLIN) {
        uint64_t n;
        [[maybe_unused]] auto r = ::read(in->event_fd, &n, sizeof n);
      }
      size_t polled = conns.size();
      if (fds[1].revents & POLLIN)
        accept_all();
      for (size_t i = 0; i < polled; ++i) {
        auto& c = conns[i];
        auto ev = fds[i + 2].revents;
        bool broken = (ev & (POLLERR | POLLNVAL)) || ((ev & POLLHUP) && c->read_closed);
        if (!broken && (ev & (POLLIN | POLLHUP)) && !c->read_closed)
          read_from(c);
        if (!broken)
          broken = !write_to(*c);
        bool done = broken;
        if (!done && c->read_closed) {
          std::lock_guard<std::mutex> lock{c->m};
          done = c->answers.empty() && c->out.empty();
        }
        if (done) {
          drop(*c);
          c = nullptr;
        }
      }
      conns.erase(std::remove(conns.begin(), conns.end(), nullptr), conns.end());
    }
  }

  void accept_all() {
    for (;;) {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0)
        return; // EAGAIN, or a connection that went away before it was taken
      if (conns.size() >= cfg->connections) { // told, not left waiting without a word
        auto refusal = "{\"error\":\"this source has max_connections (" +
                       std::to_string(cfg->connections) +
                       ") clients connected: connect again later\"}\n";
        [[maybe_unused]] auto n = ::send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL);
        ::close(fd);
        continue;
      }
      int yes = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes); // answers are small
      auto c = std::make_shared<connection>();
      c->fd = fd;
      conns.push_back(std::move(c));
    }
  }

  // Reads what is there and decodes every whole line; the records go to the intake as a chunk.
  void read_from(const std::shared_ptr<connection>& c) {
    char buf[64 * 1024];
    auto n = ::recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    auto ch = std::make_shared<chunk>();
    ch->conn = c;
    if (n <= 0) { // the client is done sending (or the connection broke): a last unended line
      c->read_closed = true;
      if (!c->in.empty())
        take_line(*c, *ch, c->in);
      c->in.clear();
    } else {
      c->in.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = c->in.find('\n', start)) != std::string::npos; start = nl + 1)
        take_line(*c, *ch, std::string_view(c->in).substr(start, nl - start));
      c->in.erase(0, start);
      if (c->in.size() > cfg->max_line) {
        add_answer(*c, answer_text(c->lines + 1, "error", "the line is longer than max_line_bytes (" +
                                                            std::to_string(cfg->max_line) +
                                                            "); the connection is closed",
                                   true));
        c->read_closed = true;
        c->in.clear();
      }
    }
    if (!ch->records.empty()) {
      {
        std::lock_guard<std::mutex> lock{in->m};
        in->waiting_records += ch->records.size();
        in->waiting.push_back(std::move(ch));
      }
      in->wake();
    }
    std::lock_guard<std::mutex> lock{c->m};
    c->flush(); // errors at the front go out now
  }

  // Adds an answer after the others; ready when `text` is given. Returns its ordinal.
  uint64_t add_answer(connection& c, std::string text = {}) {
    std::lock_guard<std::mutex> lock{c.m};
    bool ready = !text.empty();
    c.answers.push_back({std::move(text), ready});
    return c.front + c.answers.size() - 1;
  }

  void take_line(connection& c, chunk& ch, std::string_view text) {
    auto line = ++c.lines;
    if (line == 1 && text.substr(0, 3) == "\xEF\xBB\xBF") // a byte-order mark, as files have
      text.remove_prefix(3);
    if (!text.empty() && text.back() == '\r')
      text.remove_suffix(1);
    if (std::all_of(text.begin(), text.end(), [](char x) { return x == ' ' || x == '\t'; }))
      return;
    if (text.size() > cfg->max_line) {
      add_answer(c, answer_text(line, "error", "the line is longer than max_line_bytes (" +
                                                 std::to_string(cfg->max_line) + ")", true));
      return;
    }
    capnp::DynamicStruct::Reader value;
    if (auto err = decoder.decode(text, value)) {
      add_answer(c, answer_text(line, "error", err->to_string(), true));
      return;
    }
    ch.records.push_back(ch.arena.getOrphanage().newOrphanCopy(value));
    if (cfg->in.key)
      if (auto v = cfg->in.key->get(value)) // required: always there
        ch.keys.push_back(key_bytes(*v));
    if (cfg->in.id_field)
      if (auto v = cfg->in.id_field->get(value)) // required too
        ch.ids.push_back(key_bytes(*v));
    ch.lines.push_back(line);
    ch.ords.push_back(add_answer(c));
  }

  // Writes what answers are ready; false when the connection broke.
  bool write_to(connection& c) {
    std::lock_guard<std::mutex> lock{c.m};
    if (c.out.empty())
      return true;
    auto n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
      return errno == EAGAIN || errno == EINTR;
    c.out.erase(0, static_cast<size_t>(n));
    return true;
  }
};

tcp_source::tcp_source(const params& p) {
  auto s = std::make_shared<settings>();
  s->address = read_listen_address(p, "127.0.0.1:9000");
  s->in = read_json_intake(p, true);
  s->window = p.get_u64("idempotency_window", s->window);
  if (s->window == 0)
    p.fail("idempotency_window", "must be at least 1");
  s->max_line = p.get_u64("max_line_bytes", s->max_line);
  s->max_waiting = p.get_u64("max_waiting_records", s->max_waiting);
  s->connections = static_cast<unsigned>(p.get_u64("max_connections", s->connections));
  if (s->max_line == 0)
    p.fail("max_line_bytes", "must be at least 1");
  if (s->max_waiting == 0)
    p.fail("max_waiting_records", "must be at least 1");
  if (s->connections == 0 || s->connections > 4096)
    p.fail("max_connections", "must be 1 to 4096");
  settings_ = std::move(s);
}

tcp_source::~tcp_source() = default;

void tcp_source::open(context& ctx) {
  server_.reset(); // an earlier one's listener first: the address is this one's
  intake_ = std::make_shared<intake>();
  intake_->wake = ctx.waker();
  auto srv = std::make_unique<server>(settings_, intake_);
  const auto& a = settings_->address;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto port = std::to_string(a.port);
  if (int rc = ::getaddrinfo(a.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw permanent_error("cannot listen on " + a.text() + ": " + ::gai_strerror(rc));
  std::string why = "no address";
  for (auto* ai = found; ai && srv->listener < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int yes = 1;
    if (fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) == 0 &&
        ::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      srv->listener = fd;
    } else {
      why = std::strerror(errno);
      if (fd >= 0)
        ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (srv->listener < 0)
    throw permanent_error("cannot listen on " + a.text() + ": " + why);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(srv->listener, reinterpret_cast<sockaddr*>(&bound), &len);
  auto at = a;
  at.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  srv->thread = std::thread([s = srv.get()] { s->run(); });
  server_ = std::move(srv);
  ctx.log_info("listening on tcp://" + at.text() +
               " (JSON lines; each answered once committed)");
}

void tcp_source::close(context&) { server_.reset(); }

produce_result tcp_source::produce(context& ctx, size_t max_items) {
  // Chunks a failed attempt of this step took are taken again first (carry_): a step that threw
  // committed nothing of them.
  auto& batch = carry_;
  bool more = false;
  {
    std::lock_guard<std::mutex> lock{intake_->m};
    more = take_waiting(intake_->waiting, intake_->waiting_records, batch, max_items,
                        [](chunk&) {});
  }
  if (!batch.empty())
    intake_->poke(); // room again: the server reads on
  for (auto& c : batch) {
    std::vector<std::pair<uint64_t, std::string>> answers; // ordinal, text
    for (size_t i = 0; i < c->records.size(); ++i) {
      if (settings_->in.id_field) {
        auto state = ctx.state();
        auto id = "id/" + c->ids[i];
        if (state.get(id)) { // committed before, or earlier in this step
          answers.emplace_back(c->ords[i], answer_text(c->lines[i], "duplicate", "true", false));
          continue;
        }
        state.put(id, "");
        remember_in_window(state, id, settings_->window);
      }
      auto out = ctx.emit("out");
      if (settings_->in.key)
        out.key(c->keys[i]);
      out.source_position(c->lines[i]);
      answers.emplace_back(c->ords[i],
                           answer_text(c->lines[i], "seq", std::to_string(out.seq()), false));
      out.payload_any().setAs<capnp::DynamicStruct>(c->records[i].getReader());
    }
    ctx.on_commit([conn = c->conn, in = intake_, answers = std::move(answers)]() mutable {
      {
        std::lock_guard<std::mutex> lock{conn->m};
        if (conn->gone)
          return;
        for (auto& [ord, text] : answers) {
          auto& a = conn->answers.at(ord - conn->front);
          a.text = std::move(text);
          a.ready = true;
        }
        conn->flush();
      }
      in->poke();
    });
  }
  batch.clear(); // in the step now: its hooks answer them
  return more ? produce_result::more() : produce_result::idle(100); // the waker cuts it short
}

} // namespace troupe
