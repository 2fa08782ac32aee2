// Appends each line of stdin to wald as one record and prints its seq.
//   printf 'a\nb\n' | append_lines [SOCKET]
// Blocking appends: each line is durable before its seq is printed.
#include <wald/client.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  const std::string socket = argc > 1 ? argv[1] : "./wald.sock";
  auto client = wald::connect(socket, {"append_lines"});
  if (!client.ok()) {
    std::cerr << "append_lines: " << client.error().message << "\n";
    return 1;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    auto seq = client->append(line);
    if (!seq.ok()) {
      std::cerr << "append_lines: " << wald::error_code_name(seq.error().code) << ": " << seq.error().message
                << "\n";
      return 1;
    }
    std::cout << seq.value() << "\n";
  }
  return 0;
}
