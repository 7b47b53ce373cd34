// `troupe check DIR|APP.yaml`: verifies a data dir (see runtime/src/store/store_check.hpp).
#pragma once

#include <string>

namespace troupe::cli {

// Prints what it found; 0 when the data dir is whole, 1 when it is damaged (each problem named,
// then what to do).
int check_dir(const std::string& dir);

} // namespace troupe::cli
