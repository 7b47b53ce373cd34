// line_reader: whole lines with exact offsets, going back within what was handed out, long
// lines skipped, files that grow, FIFOs that never block.
#include "line_reader.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using troupe::line_reader;
using troupe::test::temp_dir;
using troupe::test::write_file;
using status = line_reader::status;

namespace {

std::string next_text(line_reader& r, bool end_is_line = true) {
  line_reader::line_view l;
  auto st = r.next(l, end_is_line);
  if (st == status::line)
    return std::string(l.text);
  return st == status::end ? "<end>" : "<more>";
}

} // namespace

TEST_CASE("lines come with the offsets of their start and of the byte after their newline",
          "[actors][line_reader]") {
  temp_dir dir;
  write_file(dir / "f", "ab\n\ncd\nlast");
  line_reader r{1 << 20};
  REQUIRE(r.open(dir / "f"));
  line_reader::line_view l;
  REQUIRE(r.next(l, true) == status::line);
  CHECK((l.text == "ab" && l.start == 0 && l.end == 3));
  REQUIRE(r.next(l, true) == status::line);
  CHECK((l.text.empty() && l.start == 3 && l.end == 4));
  REQUIRE(r.next(l, true) == status::line);
  CHECK((l.text == "cd" && l.end == 7));
  REQUIRE(r.next(l, true) == status::line); // an unterminated last line, at the end
  CHECK((l.text == "last" && l.start == 7 && l.end == 11));
  CHECK(r.next(l, true) == status::end);
}

TEST_CASE("a seek back to a line handed out re-reads it; a seek elsewhere reads the file there",
          "[actors][line_reader]") {
  temp_dir dir;
  write_file(dir / "f", "one\ntwo\nthree\n");
  line_reader r{1 << 20};
  REQUIRE(r.open(dir / "f"));
  CHECK(next_text(r) == "one");
  CHECK(next_text(r) == "two");
  r.seek(4); // the step that took "two" did not commit
  CHECK(next_text(r) == "two");
  CHECK(next_text(r) == "three");
  r.seek(0); // before the buffer's window: read from the file again
  CHECK(next_text(r) == "one");
  line_reader fresh{1 << 20};
  REQUIRE(fresh.open(dir / "f"));
  fresh.seek(8); // a restart at a committed offset
  CHECK(next_text(fresh) == "three");
  CHECK(next_text(fresh) == "<end>");
}

TEST_CASE("a file that grows: a partial last line waits for its newline", "[actors][line_reader]") {
  temp_dir dir;
  write_file(dir / "f", "a\npart");
  line_reader r{1 << 20};
  REQUIRE(r.open(dir / "f"));
  CHECK(next_text(r, false) == "a");
  CHECK(next_text(r, false) == "<end>");
  {
    std::ofstream out{dir / "f", std::ios::app};
    out << "ial\nb\n";
  }
  CHECK(next_text(r, false) == "partial");
  CHECK(next_text(r, false) == "b");
}

TEST_CASE("a line longer than the limit is skipped whole, its head kept", "[actors][line_reader]") {
  temp_dir dir;
  std::string big(10000, 'x');
  write_file(dir / "f", "short\n" + big + "\nafter\n" + big);
  line_reader r{100};
  REQUIRE(r.open(dir / "f"));
  line_reader::line_view l;
  CHECK(next_text(r) == "short");
  REQUIRE(r.next(l, true) == status::line);
  CHECK(l.too_long);
  CHECK(l.text.size() == 4096);
  CHECK((l.start == 6 && l.end == 6 + 10001));
  CHECK(next_text(r) == "after");
  REQUIRE(r.next(l, true) == status::line); // too long, and unterminated at the end
  CHECK((l.too_long && l.end == 6 + 10001 + 6 + 10000));
  CHECK(next_text(r) == "<end>");
}

TEST_CASE("a FIFO never blocks: no writer yet, no data yet, then lines, then its end",
          "[actors][line_reader]") {
  temp_dir dir;
  auto path = dir / "p";
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  line_reader r{1 << 20};
  REQUIRE(r.open(path)); // returns at once although no writer has opened it
  CHECK(r.is_fifo());
  CHECK(next_text(r) == "<more>"); // no writer yet is not the end
  int w = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
  REQUIRE(w >= 0);
  CHECK(next_text(r) == "<more>"); // a writer, no data
  REQUIRE(::write(w, "x\ny", 3) == 3);
  CHECK(next_text(r) == "x");
  CHECK(next_text(r, false) == "<more>");
  ::close(w);
  CHECK(next_text(r) == "y"); // the writer has gone: its last line ends the stream
  CHECK(next_text(r) == "<end>");
}

TEST_CASE("a missing file is reported as missing", "[actors][line_reader]") {
  temp_dir dir;
  line_reader r{1 << 20};
  CHECK_FALSE(r.open(dir / "nope"));
  CHECK_FALSE(r.is_open());
}
