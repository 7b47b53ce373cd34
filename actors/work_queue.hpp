// The work queue's command worker: `type: work_queue` runs an external command per item.
//
// A work queue is a leasing stage (stage_type::leases, see runtime/CONFIG.md "Work queues"):
// with `workers: N`, a free worker takes the next waiting item (highest `priority` first,
// arrival order within a priority); an item whose worker dies or holds it past `lease` goes to
// another worker; a failed item is retried (`retry`) and then dead-lettered with its last error.
// Each worker runs one command at a time, so at most N commands run at once.
//
//   command   the program and its arguments (a list); an argument may hold `{field.path}`
//             placeholders, replaced by the item's field (a Text as is, an integer in decimal);
//             `{{` and `}}` are literal braces
//   stdin     `json` (default): the item's payload as one JSON object and a newline; `none`
//   timeout   per item (default 60s): past it the command and its process group are killed and
//             the attempt fails
//   priority  an integer field: higher is taken first (strict); default: arrival order
//   cwd       the folder the command runs in (relative to the YAML; created when missing);
//             default: the node's working directory
//
// Exit status 0 is success; anything else, a signal or the timeout fails the attempt, and the
// dead letter keeps the end of the command's standard error. When the optional `out` port is
// connected, every line the command writes to standard output is a JSON object of out's
// struct, emitted as a record (a line that is not fails the attempt). Effects outside LMDB are
// at least once: a command may run again for an item whose step did not commit.
#pragma once

#include "field_path.hpp"
#include "subprocess.hpp"

#include <troupe/json.hpp>
#include <troupe/stage.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

class command_worker : public stage {
public:
  explicit command_worker(const params& p);
  void open(context& ctx) override;
  void process(context& ctx, const record& r) override;
  int64_t priority(const record& r) override;

private:
  // One argument: literal text and fields, in order.
  struct piece {
    std::string text;
    std::optional<field_path> field;
  };
  static std::vector<piece> parse_argument(const params& p, const std::string& arg, size_t index,
                                           capnp::StructSchema input);
  std::optional<std::string> argument(const std::vector<piece>& arg,
                                      capnp::DynamicStruct::Reader payload,
                                      std::string& missing) const;

  std::string program_;
  std::vector<std::vector<piece>> args_;
  bool json_stdin_ = true;
  subprocess_options options_;
  std::optional<field_path> priority_;
  std::unique_ptr<json_encoder> encoder_;
  std::unique_ptr<json_decoder> decoder_; // for `out`, when connected
  std::string input_, line_;
};

void register_work_queue(registry& reg);

} // namespace troupe
