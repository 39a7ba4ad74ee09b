#pragma once

#include <iostream>

namespace meridian::cli {

template <typename TableFn>
void Print(OutputFormat format, const nlohmann::json& value, TableFn table) {
  switch (format) {
    case OutputFormat::kJson:
      std::cout << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return;
    case OutputFormat::kYaml:
      std::cout << ToYaml(value);
      return;
    case OutputFormat::kTable:
      table(value);
      return;
  }
}

}  // namespace meridian::cli
