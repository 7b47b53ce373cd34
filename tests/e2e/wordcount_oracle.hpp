// The word count's oracle, shared by the tests of apps/wordcount and apps/cluster: a text to
// count, coreutils' count of it, and the counts a run wrote (read by the tests' own JSON reader).
#pragma once

#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <random>
#include <string>

namespace troupe::test {

// A text of `words` words: mixed case, punctuation, digits and UTF-8 between them.
inline void write_text(const std::string& path, size_t words, uint64_t seed) {
  std::mt19937_64 rnd{seed};
  const char* vocabulary[] = {"the", "Rabbit", "ALICE", "queen", "Hatter", "tea", "o'clock",
                              "mock-turtle", "x", "zz", "naïve", "Straße", "co-operate", "I"};
  const char* between[] = {" ", " ", " ", ", ", ". ", "\n", " -- ", "; ", " 42 ", " “", "” ",
                           "\t", " café ", "\r\n"};
  std::ofstream f{path};
  for (size_t i = 0; i < words; ++i) {
    if (rnd() % 50 == 0) { // a rarer word, so the vocabulary is large
      f << "w" << char('a' + rnd() % 26) << char('a' + rnd() % 26) << char('a' + rnd() % 26);
    } else {
      f << vocabulary[rnd() % 14];
    }
    f << between[rnd() % 14];
  }
}

inline std::map<std::string, uint64_t> coreutils_counts(const temp_dir& dir) {
  auto out = dir / "expected.txt";
  std::string cmd = "LC_ALL=C tr -cs 'A-Za-z' '\\n' < " + dir / "in.txt" +
                    " | LC_ALL=C tr A-Z a-z | grep -v '^$' | LC_ALL=C sort | uniq -c > " + out;
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::map<std::string, uint64_t> counts;
  std::ifstream in{out};
  uint64_t n;
  std::string word;
  while (in >> n >> word)
    counts[word] = n;
  return counts;
}

inline std::map<std::string, uint64_t> troupe_counts(const temp_dir& dir) {
  std::map<std::string, uint64_t> counts;
  std::ifstream in{dir / "out/counts.jsonl"};
  for (std::string line; std::getline(in, line);) {
    auto obj = parse_flat_json(line);
    REQUIRE(obj);
    auto word = obj->at("word").text;
    INFO("word '" << word << "' written twice");
    REQUIRE(counts.count(word) == 0);
    counts[word] = std::stoull(obj->at("count").text);
  }
  return counts;
}

} // namespace troupe::test
