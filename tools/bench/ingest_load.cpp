// troupe_ingest_load: the client side of the durable-ingest benchmark (ingest_bench.sh).
//
//   troupe_ingest_load HOST PORT CONNECTIONS SECONDS RECORDS_PER_BODY RECORD_BYTES
//
// CONNECTIONS threads, each with one keep-alive connection, POST bodies of RECORDS_PER_BODY JSON
// lines ({"id":N,"text":"xxx..."}, RECORD_BYTES bytes each with its newline) as fast as they are
// answered, for SECONDS after a one-second warm-up. Prints one line:
//   records_per_s=R bodies_per_s=B p50_ms=.. p99_ms=.. errors=E
// counting only bodies answered 200 (acknowledged: committed). Exit 1 if none was.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr,
                 "usage: troupe_ingest_load HOST PORT CONNECTIONS SECONDS RECORDS_PER_BODY "
                 "RECORD_BYTES\n");
    return 64;
  }
  std::string host = argv[1];
  int port = std::atoi(argv[2]);
  int connections = std::atoi(argv[3]);
  double seconds = std::atof(argv[4]);
  int per_body = std::atoi(argv[5]);
  int record_bytes = std::atoi(argv[6]);
  using clock = std::chrono::steady_clock;
  auto start = clock::now() + std::chrono::seconds{1}; // the warm-up ends here
  auto end = start + std::chrono::duration_cast<clock::duration>(
                       std::chrono::duration<double>(seconds));
  std::atomic<uint64_t> next_id{0}, bodies{0}, errors{0};
  std::vector<std::vector<double>> latencies(connections);
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c)
    threads.emplace_back([&, c] {
      httplib::Client client{host, port};
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(60, 0);
      std::string body;
      for (;;) {
        auto now = clock::now();
        if (now >= end)
          break;
        body.clear();
        auto id = next_id.fetch_add(per_body);
        for (int i = 0; i < per_body; ++i) {
          auto head = "{\"id\":" + std::to_string(id + i) + ",\"text\":\"";
          auto tail = std::string{"\"}\n"};
          int pad = std::max(1, record_bytes - static_cast<int>(head.size() + tail.size()));
          body += head;
          body.append(static_cast<size_t>(pad), 'x');
          body += tail;
        }
        auto sent = clock::now();
        auto res = client.Post("/", body, "application/x-ndjson");
        auto done = clock::now();
        bool counted = sent >= start && done <= end;
        if (!res || res->status != 200) {
          if (counted)
            ++errors;
          continue;
        }
        if (counted) {
          ++bodies;
          latencies[c].push_back(std::chrono::duration<double, std::milli>(done - sent).count());
        }
      }
    });
  for (auto& t : threads)
    t.join();
  std::vector<double> all;
  for (auto& l : latencies)
    all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[static_cast<size_t>(p * (all.size() - 1))]; };
  double b = static_cast<double>(bodies.load()) / seconds;
  std::printf("records_per_s=%.0f bodies_per_s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%llu\n",
              b * per_body, b, pct(0.5), pct(0.99),
              static_cast<unsigned long long>(errors.load()));
  return bodies.load() > 0 ? 0 : 1;
}
