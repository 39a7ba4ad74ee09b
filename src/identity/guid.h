// Random GUIDs in the form Entra uses for app ids, tenant ids, trace and correlation ids.
#pragma once

#include <string>
#include <string_view>

namespace meridian::identity {

// A random (version 4) GUID, lowercase, e.g. "3f2504e0-4f89-41d3-9a0c-0305e82c3301".
// Thread-safe; aborts only if the OS random source fails.
std::string NewGuid();

// True for 8-4-4-4-12 hexadecimal digits (either case).
bool IsGuid(std::string_view text);

}  // namespace meridian::identity
