#include "troupe_check.hpp"

#include "store/store_check.hpp"

#include <iostream>

namespace troupe::cli {

int check_dir(const std::string& dir) {
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
