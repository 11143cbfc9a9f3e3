// flin's exit-code contract: stable, documented in `flin --help` and flin(1),
// tested for every command. Scripts depend on these numbers; never renumber.
#pragma once

namespace flin::cli {

enum ExitCode : int {
  kExitOk = 0,        // success
  kExitNotFound = 1,  // the key (or one of the keys) does not exist
  kExitUsage = 2,     // bad flags, arguments or input file syntax
  kExitConnect = 3,   // cannot connect to flind (or the connection was lost / timed out)
  kExitServer = 4,    // flind answered with an error
  kExitPartial = 5,   // import stopped part-way: some batches were committed
};

}  // namespace flin::cli
