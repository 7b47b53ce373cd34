// (b) and (c): the runtime end to end, in this process, as `troupe run` would run the app.
//
// (b) generator -> bench.pass -> bench.pass (each forwards every record unchanged) -> bench.count
//     (counts): every record is built once as an Envelope, appended to `raw`, read and decoded
//     by the first pass stage, appended to `passed`, read by the second, appended to `twice`,
//     read and decoded by the sink; every step commits its outputs, cursor and state through
//     the node's writer. Consumed records are trimmed beyond a small retention, as a
//     long-running pipeline would be set up.
// (c) only the generator, writing to an edge whose one consumer group has no stage on this
//     node: nothing is consumed and nothing is trimmed, so all records stay in the log. This is
//     what memory looks like while a consumer is down and the log grows.
#include "phase.hpp"

#include "config/app_config.hpp"
#include "builtin_stages.hpp"
#include "base/log.hpp"
#include "node/node.hpp"
#include "store/store.hpp"
#include "supervision/supervisor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

namespace troupe::bench {

namespace {

// Records the sink saw. Each phase is a process of its own, so one global is enough.
std::atomic<uint64_t> sink_count{0};

class pass_stage : public stage {
public:
  explicit pass_stage(const params&) {}
  void process(context& ctx, const record& r) override { ctx.forward("out", r); }
};

class count_sink : public stage {
public:
  explicit count_sink(const params&) {}
  void process_batch(context&, const batch& records) override {
    sink_count.fetch_add(records.size(), std::memory_order_relaxed);
  }
};

// A trivial in-process task of a work queue: leased, then passed on.
class task_stage : public stage {
public:
  explicit task_stage(const params&) {}
  void process(context& ctx, const record& r) override { ctx.forward("out", r); }
};

// Records of 16 origins (the record key), each with sequence ids 0, 1, 2, ... in `index`, of
// which 1% are sent twice and 1% swapped with the next: what the sequence stage is for. A fixed
// pseudo-random stream (xorshift), so that every run measures the same work.
class seq_source : public source {
public:
  explicit seq_source(const params& p)
      : count_(p.get_u64("count", 1000000)), body_(p.get_u64("payload_size", 100), 'x'),
        schema_(*p.output_schema("out")), index_(schema_.getFieldByName("index")),
        body_field_(schema_.getFieldByName("body")) {}
  produce_result produce(context& ctx, size_t max_items) override {
    auto st = ctx.state();
    uint64_t done = st.get_u64("done").value_or(0), rng = st.get_u64("rng").value_or(88172645463325252u);
    std::vector<uint64_t> next(origins);
    for (size_t o = 0; o < origins; ++o)
      next[o] = st.get_u64("n" + std::to_string(o)).value_or(0);
    auto emit = [&](size_t o, uint64_t id) {
      auto out = ctx.emit("out");
      out.key(keys_[o]);
      auto b = out.init_payload_dynamic();
      b.set(index_, id);
      b.set(body_field_, capnp::Data::Reader(reinterpret_cast<const kj::byte*>(body_.data()),
                                        body_.size()));
      ++done;
    };
    for (size_t i = 0; i < max_items && done < count_; ++i) {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      auto o = static_cast<size_t>(done % origins);
      auto roll = rng % 100;
      if (roll == 0 && next[o] > 0) {
        emit(o, next[o] - 1); // a repeat
      } else if (roll == 1 && done + 1 < count_) {
        emit(o, next[o] + 1); // out of order: the next one first
        emit(o, next[o]);
        next[o] += 2;
        ++i;
      } else {
        emit(o, next[o]++);
      }
    }
    st.put_u64("done", done);
    st.put_u64("rng", rng);
    for (size_t o = 0; o < origins; ++o)
      st.put_u64("n" + std::to_string(o), next[o]);
    return done >= count_ ? produce_result::done() : produce_result::more();
  }

private:
  static constexpr size_t origins = 16;
  uint64_t count_;
  std::string body_;
  capnp::StructSchema schema_;
  capnp::StructSchema::Field index_, body_field_; // looked up once, as the generator does
  std::vector<std::string> keys_ = [] {
    std::vector<std::string> k;
    for (size_t o = 0; o < origins; ++o)
      k.push_back("origin-" + std::to_string(o));
    return k;
  }();
};

void register_bench_stages(registry& reg) {
  register_builtin_stages(reg);
  reg.add_source<seq_source>("bench.seqgen").params({"count", "payload_size"});
  reg.add_operator<pass_stage>("bench.pass");
  reg.add_operator<task_stage>("bench.task").leases();
  reg.add_sink<count_sink>("bench.count");
}

std::string edge_yaml(const std::string& name, uint64_t max_records, uint64_t keep) {
  return "  " + name + ": {max_records: " + std::to_string(max_records) +
         ", retention: {count: " + std::to_string(keep) + "}}\n";
}

// The app: gen -> raw -> [pass -> passed -> pass2 -> twice ->] sink.
std::string app_yaml(const phase_options& o, bool with_pass, uint64_t raw_max_records) {
  std::string y = "app: bench\n";
  y += std::string{"durability: "} + (o.mode == durability::sync ? "sync" : "process") + "\n";
  y += "store: {map_size: 64GiB}\n";
  y += "defaults:\n  batch: {max_items: " + std::to_string(o.batch) + "}\n";
  y += "edges:\n" + edge_yaml("raw", raw_max_records, o.retention);
  if (with_pass)
    y += edge_yaml("passed", o.max_backlog, o.retention) +
         edge_yaml("twice", o.max_backlog, o.retention);
  y += "stages:\n"
       "  - name: gen\n"
       "    type: generator\n"
       "    count: " +
       std::to_string(o.records) +
       "\n"
       "    payload_size: " +
       std::to_string(o.value_size) +
       "\n"
       "    outputs: {out: raw}\n";
  if (with_pass)
    y += "  - name: pass\n"
         "    type: bench.pass\n"
         "    inputs: [raw]\n"
         "    outputs: {out: passed}\n"
         "  - name: pass2\n"
         "    type: bench.pass\n"
         "    inputs: [passed]\n"
         "    outputs: {out: twice}\n";
  y += "  - name: sink\n"
       "    type: bench.count\n"
       "    inputs: [" +
       std::string{with_pass ? "twice" : "raw"} + "]\n";
  return y;
}

// Writes the YAML to dir/app.yaml and loads it with data in dir/data.
bool load(const phase_options& o, const std::string& yaml, registry& reg, load_result& out,
          phase_result& r) {
  auto path = o.dir + "/app.yaml";
  {
    std::ofstream f{path, std::ios::binary};
    f << yaml;
    if (!f) {
      r.fail("cannot write " + path);
      return false;
    }
  }
  register_bench_stages(reg);
  out = load_app(path, reg, o.dir + "/data");
  if (!out.issues.empty()) {
    std::string all;
    for (const auto& issue : out.issues)
      all += issue.to_string() + "; ";
    r.fail("the bench app does not load: " + all);
    return false;
  }
  return true;
}

struct timed_run {
  node_outcome outcome;
  double seconds = 0;
  bool stopped_at_budget = false;
};

// run_node with a watchdog: past the budget the node is stopped in order (steps in flight
// commit), so what it did until then is measured.
timed_run run_timed(const app_config& app, std::chrono::seconds budget) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::max(2u, std::thread::hardware_concurrency()));
  caf::actor_system sys{cfg};
  timed_run out;
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  caf::actor root;
  std::thread watchdog{[&] {
    std::unique_lock<std::mutex> lock{m};
    if (!cv.wait_for(lock, budget, [&] { return finished; }) && root) {
      caf::anon_send(root, stop_atom::value);
      out.stopped_at_budget = true;
    }
  }};
  auto start = std::chrono::steady_clock::now();
  out.outcome = run_node(sys, app, [&](caf::actor a) {
    std::lock_guard<std::mutex> guard{m};
    root = std::move(a);
  });
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  {
    std::lock_guard<std::mutex> guard{m};
    finished = true;
    root = nullptr;
  }
  cv.notify_all();
  watchdog.join();
  return out;
}

// Reopens the stopped node's store: the backlog of `edge` and the size of its oldest record.
void inspect(const app_config& app, const std::string& edge, phase_result& r) {
  store_options opts;
  opts.dir = app.data_dir;
  opts.map_size = app.map_size;
  opts.mode = app.mode;
  auto db = store::open(opts, layout_of(app));
  if (!db) {
    r.fail("cannot reopen the store: " + describe(db.error()));
    return;
  }
  auto e = *(*db)->find_edge(edge);
  auto reader = (*db)->reader();
  if (auto err = reader->refresh()) {
    r.fail("cannot read the store: " + describe(err));
    return;
  }
  r.backlog = (*db)->backlog(e).records;
  (void)reader->read(e, 0, 0, 1, [&](uint64_t, std::string_view bytes) {
    r.record_bytes = bytes.size();
    return false;
  });
  reader.reset();
}

void quiet(const phase_options& o) {
  if (!o.verbose)
    set_log_level(log_level::warn);
}

} // namespace

phase_result run_pipeline(const phase_options& o) {
  quiet(o);
  phase_result r;
  registry reg;
  load_result loaded;
  if (!load(o, app_yaml(o, true, o.max_backlog), reg, loaded, r))
    return r;
  const auto& app = *loaded.app;
  auto run = run_timed(app, o.budget);
  r.seconds = run.seconds;
  r.records = sink_count.load();
  r.stopped_at_budget = run.stopped_at_budget;
  r.commits = run.outcome.commits;
  r.flushes = run.outcome.flushes;
  if (run.outcome.exit_code != 0) {
    r.fail("the node failed: " + run.outcome.message);
    return r;
  }
  if (!run.stopped_at_budget && r.records != o.records) {
    r.fail("the sink counted " + std::to_string(r.records) + " of " + std::to_string(o.records) +
           " records");
    return r;
  }
  inspect(app, "twice", r);
  measure_data_file(app.data_dir, r);
  return r;
}

// (d): gen -> raw -> X -> mid -> count for each routing stage X, or gen -> raw -> count
// ("plain"). The edges carry the bench's own struct, so that conditions and keys have fields.
phase_result run_pattern(const phase_options& o) {
  quiet(o);
  phase_result r;
  {
    std::ofstream f{o.dir + "/bench.capnp"};
    f << "@0xc9d1e3f5a7b90213;\nstruct Rec { index @0 :UInt64; body @1 :Data; }\n";
  }
  const std::string& x = o.pattern;
  std::string middle;
  unsigned fanout = 1;
  if (x == "copier")
    middle = "{name: x, type: copier, input: raw, outputs: {a: mid}}";
  else if (x == "filter")
    middle = "{name: x, type: filter, where: 'index >= 0', input: raw, output: mid}";
  else if (x == "splitter")
    middle = "{name: x, type: splitter, routes: {a: 'index >= 0'}, input: raw, outputs: {a: mid}}";
  else if (x == "sharder")
    middle = "{name: x, type: sharder, key: index, input: raw, outputs: {shard_0: mid}}";
  else if (x == "merger")
    middle = "{name: x, type: merger, inputs: [raw], output: mid}";
  else if (x == "queue")
    middle = "{name: x, type: bench.task, workers: 2, input: raw, output: mid}";
  else if (x == "sequence") // fed by bench.seqgen: 1% repeats (dropped), 1% out of order
    middle = "{name: x, type: sequence, seq_field: index, first_seq: 0, input: raw, output: mid}";
  else if (x.rfind("fanout", 0) == 0) // raw read by N sinks (publish/subscribe)
    fanout = std::stoul(x.substr(6));
  else if (x != "plain") {
    r.fail("unknown pattern '" + x + "'");
    return r;
  }
  std::string y = "app: patterns\n";
  y += std::string{"durability: "} + (o.mode == durability::sync ? "sync" : "process") + "\n";
  y += "store: {map_size: 64GiB}\nschema: {file: bench.capnp, payload: Rec}\n";
  y += "defaults:\n  batch: {max_items: " + std::to_string(o.batch) + "}\n";
  y += "edges:\n" + edge_yaml("raw", o.max_backlog, o.retention);
  if (!middle.empty())
    y += edge_yaml("mid", o.max_backlog, o.retention);
  y += "stages:\n  - {name: gen, type: " +
       std::string(x == "sequence" ? "bench.seqgen" : "generator") +
       ", count: " + std::to_string(o.records) + ", payload_size: " +
       std::to_string(o.value_size) + ", output: raw}\n";
  if (!middle.empty())
    y += "  - " + middle + "\n";
  for (unsigned i = 0; i < fanout; ++i)
    y += "  - {name: sink" + std::to_string(i) + ", type: bench.count, input: " +
         std::string(middle.empty() ? "raw" : "mid") + "}\n";
  registry reg;
  load_result loaded;
  if (!load(o, y, reg, loaded, r))
    return r;
  auto run = run_timed(*loaded.app, o.budget);
  r.seconds = run.seconds;
  r.records = sink_count.load();
  r.stopped_at_budget = run.stopped_at_budget;
  r.commits = run.outcome.commits;
  r.flushes = run.outcome.flushes;
  if (run.outcome.exit_code != 0)
    r.fail("the node failed: " + run.outcome.message);
  else if (!run.stopped_at_budget && x != "sequence" && r.records != o.records * fanout)
    r.fail("the sinks counted " + std::to_string(r.records) + " of " +
           std::to_string(o.records * fanout) + " records");
  else if (!run.stopped_at_budget && x == "sequence" &&
           (r.records >= o.records || r.records < o.records * 97 / 100))
    r.fail("the sequence stage passed " + std::to_string(r.records) + " of " +
           std::to_string(o.records) + " records (about 1% are repeats)");
  return r;
}

phase_result run_unconsumed(const phase_options& o) {
  quiet(o);
  phase_result r;
  registry reg;
  load_result loaded;
  // The backlog cap must not stop the generator: every record is meant to stay unconsumed.
  if (!load(o, app_yaml(o, false, o.records + 1), reg, loaded, r))
    return r;
  // The loader rejects an edge nobody reads, so drop the sink after loading. Its consumer group
  // stays on the edge: the group never commits, so it holds every record (nothing is trimmed)
  // and the backlog counts them all.
  app_config app = *loaded.app;
  app.stages.erase(std::remove_if(app.stages.begin(), app.stages.end(),
                                  [](const stage_config& s) { return s.name == "sink"; }),
                   app.stages.end());
  auto run = run_timed(app, o.budget);
  r.seconds = run.seconds;
  r.stopped_at_budget = run.stopped_at_budget;
  if (run.outcome.exit_code != 0) {
    r.fail("the node failed: " + run.outcome.message);
    return r;
  }
  inspect(app, "raw", r);
  r.records = r.backlog;
  if (!run.stopped_at_budget && r.backlog != o.records)
    r.fail("the log holds " + std::to_string(r.backlog) + " unconsumed records, not " +
           std::to_string(o.records));
  measure_data_file(app.data_dir, r);
  return r;
}

} // namespace troupe::bench
