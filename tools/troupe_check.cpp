#include "troupe_check.hpp"

#include "store/store_check.hpp"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace troupe::cli {

int check_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(fs::path(dir) / "schedule.json", ec) &&
      !fs::exists(fs::path(dir) / "data.mdb", ec)) {
    // A scheduled app's data dir: a store per run, in runs/<id>.
    std::vector<std::string> runs;
    for (const auto& run : fs::directory_iterator(fs::path(dir) / "runs", ec))
      runs.push_back(run.path().string());
    std::sort(runs.begin(), runs.end());
    std::cout << dir << ": a schedule's data dir; checking the store of each of its "
              << runs.size() << " runs\n";
    int worst = 0;
    for (const auto& run : runs)
      worst = std::max(worst, check_dir(run));
    return worst;
  }
  auto report = check_data_dir(dir);
  if (report.no_store) {
    std::cout << dir << ": no store here yet (no app has run with this data dir, or its first "
                        "commit never reached the disk): nothing to check\n";
    return 0;
  }
  for (const auto& note : report.notes)
    std::cout << "  " << note << "\n";
  if (report.ok()) {
    std::cout << dir << ": ok (" << report.entries << " values verified, " << report.records
              << " records)\n";
    return 0;
  }
  for (const auto& p : report.problems)
    std::cerr << dir << ": " << p << "\n";
  std::cerr << dir << ": damaged: " << report.problems.size()
            << (report.problems.size() == 1 ? " problem" : " problems") << " found ("
            << report.entries << " values verified). A node refuses to read damaged data and "
               "stops naming it. Restore the data dir from a copy, or start the app afresh with "
               "`troupe reset APP.yaml` (its outputs are rebuilt from the inputs).\n";
  return 1;
}

} // namespace troupe::cli
