// Shell completion scripts (bash, zsh, fish) for flin and flind, generated
// from the data the programs themselves use: flin's CLI::App tree (every
// subcommand, flag, value hint and {choice,list}) and flind's flag table
// below. `flin completion SHELL [--flind]` prints them; the build installs
// their output.
//
// Thread-safety: pure functions.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace flin::cli {

// A command-line option as the completion generators see it.
struct OptionSpec {
  std::vector<std::string> names;  // "-a", "--addr"
  std::string description;
  bool takes_value = false;
  std::string value_name;            // "ADDR"
  std::vector<std::string> choices;  // {auto,always,never}
  bool files = false;                // the value is a file path
  bool dirs = false;                 // the value is a directory
};

struct CommandSpecForCompletion {
  std::string name;
  std::string description;
  std::vector<OptionSpec> options;
  // Positional arguments, in order; the last may repeat.
  std::vector<OptionSpec> positionals;
  bool last_positional_repeats = false;
  // Nested commands (`flin cluster status`); one level deep.
  std::vector<CommandSpecForCompletion> subcommands;
};

struct ProgramSpec {
  std::string name;
  std::vector<OptionSpec> options;                 // global options
  std::vector<CommandSpecForCompletion> commands;  // empty for flind
  std::vector<OptionSpec> positionals;             // for programs without commands
};

ProgramSpec ProgramSpecFromApp(const CLI::App& app, std::string name);
// flind's flags (kept in step with `flind --help` by the cli completion test).
ProgramSpec FlindProgramSpec();

// shell is "bash", "zsh" or "fish".
std::string GenerateScript(const ProgramSpec& spec, std::string_view shell);
std::string GenerateCompletion(const CLI::App& app, std::string_view shell);
std::string GenerateFlindCompletion(std::string_view shell);

}  // namespace flin::cli
