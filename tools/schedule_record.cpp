#include "schedule_record.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace troupe::cli {

namespace fs = std::filesystem;

std::optional<schedule_state> load_state(const fs::path& path, std::string& error) {
  std::ifstream in(path);
  if (!in)
    return std::nullopt;
  schedule_state st;
  try {
    auto j = nlohmann::json::parse(in);
    st.since = j.at("since").get<int64_t>();
    if (!j.at("last_due").is_null())
      st.last_due = j["last_due"].get<int64_t>();
    if (auto& r = j.at("running"); !r.is_null())
      st.running = running_run{r.at("id").get<std::string>(), r.at("due").get<int64_t>(),
                               r.at("attempts").get<int>(), r.at("pid").get<int>()};
    st.runs = j.at("runs");
  } catch (const nlohmann::json::exception& e) {
    error = path.string() + " is not a schedule's record (" + e.what() +
            "): it says which runs have ended, so nothing runs until it is fixed or removed "
            "(removed, runs due before the next start are not run)";
    return std::nullopt;
  }
  return st;
}

// Replaces the file whole: written aside, synced, renamed, the folder synced.
bool save_state(const fs::path& path, const schedule_state& st, std::string& error) {
  using json = nlohmann::json;
  json j = {{"since", st.since},
            {"last_due", st.last_due ? json(*st.last_due) : json(nullptr)},
            {"running", nullptr},
            {"runs", st.runs}};
  if (st.running)
    j["running"] = {{"id", st.running->id},
                    {"due", st.running->due},
                    {"attempts", st.running->attempts},
                    {"pid", st.running->pid}};
  auto text = j.dump(1) + "\n";
  auto aside = path.string() + ".new";
  int fd = ::open(aside.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == ssize_t(text.size()) &&
            ::fsync(fd) == 0;
  if (fd >= 0)
    ::close(fd);
  ok = ok && ::rename(aside.c_str(), path.c_str()) == 0;
  int dir = ok ? ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  ok = ok && dir >= 0 && ::fsync(dir) == 0;
  if (dir >= 0)
    ::close(dir);
  if (!ok)
    error = "cannot write " + path.string() + ": " + std::strerror(errno);
  return ok;
}

} // namespace troupe::cli
