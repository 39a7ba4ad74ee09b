#include "storage/azure_xml.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <pugixml.hpp>

#include "absl/strings/ascii.h"
#include "fmt/format.h"
#include "net/http_types.h"
#include "storage/azure_shared_key.h"

namespace meridian::storage {
namespace {

constexpr std::string_view kWhat = "Azure List Blobs response";

Status FieldError(std::string_view field, std::string_view why) {
  return absl::InternalError(fmt::format("{}: {} {}", kWhat, field, why));
}

// The text of a <Name> element; Encoded="true" marks a percent-encoded name (used for
// names with characters XML cannot carry).
Result<std::string> ReadName(const pugi::xml_node& parent, std::string_view field) {
  pugi::xml_node node = parent.child("Name");
  if (!node) return FieldError(field, "is missing");
  std::string name = node.text().as_string();
  if (std::string_view(node.attribute("Encoded").as_string()) == "true") {
    std::string decoded;
    if (!net::PercentDecode(name, &decoded)) return FieldError(field, "has a bad %-escape");
    name = std::move(decoded);
  }
  if (name.empty()) return FieldError(field, "is empty");
  return name;
}

Result<std::string> StripRoot(std::string name, std::string_view root_prefix,
                              std::string_view field) {
  if (!name.starts_with(root_prefix)) {
    return FieldError(field, fmt::format("'{}' lies outside prefix '{}'", name, root_prefix));
  }
  return name.substr(root_prefix.size());
}

Result<int64_t> ReadSize(const pugi::xml_node& properties, std::string_view field) {
  pugi::xml_node node = properties.child("Content-Length");
  if (!node) return FieldError(field, "is missing");
  const std::string text = node.text().as_string();
  if (text.empty() || !std::all_of(text.begin(), text.end(), ::isdigit) || text.size() > 18) {
    return FieldError(field, fmt::format("'{}' is not a size", text));
  }
  return std::strtoll(text.c_str(), nullptr, 10);
}

Result<ObjectInfo> ReadBlob(const pugi::xml_node& blob, std::string_view root_prefix, int index) {
  const std::string where = fmt::format("Blobs/Blob[{}]", index);
  ASSIGN_OR_RETURN(std::string full_name, ReadName(blob, where + "/Name"));
  ObjectInfo info;
  ASSIGN_OR_RETURN(info.name, StripRoot(std::move(full_name), root_prefix, where + "/Name"));
  pugi::xml_node properties = blob.child("Properties");
  if (!properties) return FieldError(where + "/Properties", "is missing");
  ASSIGN_OR_RETURN(info.size, ReadSize(properties, where + "/Properties/Content-Length"));
  const std::string etag = properties.child("Etag").text().as_string();
  if (etag.empty()) return FieldError(where + "/Properties/Etag", "is missing or empty");
  info.etag = QuoteEtag(etag);
  const std::string modified = properties.child("Last-Modified").text().as_string();
  Result<int64_t> modified_ms = ParseHttpDate(modified);
  if (!modified_ms.ok()) {
    return FieldError(where + "/Properties/Last-Modified",
                      fmt::format("'{}' is not an RFC 1123 date", modified));
  }
  info.last_modified_unix_ms = *modified_ms;
  const std::string md5 = properties.child("Content-MD5").text().as_string();
  if (!md5.empty()) info.content_md5 = md5;
  for (pugi::xml_node entry : blob.child("Metadata").children()) {
    if (entry.type() != pugi::node_element) continue;
    info.metadata[absl::AsciiStrToLower(std::string(entry.name()))] = entry.text().as_string();
  }
  return info;
}

}  // namespace

std::string QuoteEtag(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') return std::string(etag);
  return fmt::format("\"{}\"", etag);
}

Result<ListPage> ParseListBlobsXml(std::string_view xml, std::string_view root_prefix) {
  pugi::xml_document doc;
  const pugi::xml_parse_result parsed = doc.load_buffer(xml.data(), xml.size());
  if (!parsed) {
    return absl::InternalError(
        fmt::format("{}: not XML ({} at byte {})", kWhat, parsed.description(), parsed.offset));
  }
  pugi::xml_node root = doc.child("EnumerationResults");
  if (!root) return FieldError("EnumerationResults", "is missing");
  pugi::xml_node blobs = root.child("Blobs");
  if (!blobs) return FieldError("EnumerationResults/Blobs", "is missing");
  ListPage page;
  int blob_index = 0;
  int prefix_index = 0;
  for (pugi::xml_node node : blobs.children()) {
    const std::string_view kind = node.name();
    if (kind == "Blob") {
      ASSIGN_OR_RETURN(ObjectInfo info, ReadBlob(node, root_prefix, blob_index++));
      page.objects.push_back(std::move(info));
    } else if (kind == "BlobPrefix") {
      const std::string where = fmt::format("Blobs/BlobPrefix[{}]/Name", prefix_index++);
      ASSIGN_OR_RETURN(std::string name, ReadName(node, where));
      ASSIGN_OR_RETURN(name, StripRoot(std::move(name), root_prefix, where));
      page.common_prefixes.push_back(std::move(name));
    }
  }
  page.next_marker = root.child("NextMarker").text().as_string();
  return page;
}

std::string BuildBlockListXml(const std::vector<std::string>& block_ids) {
  // Block ids are base64 (checked before this is called): nothing in them needs escaping.
  std::string xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
  for (const std::string& id : block_ids) xml += fmt::format("<Latest>{}</Latest>", id);
  xml += "</BlockList>";
  return xml;
}

AzureError ParseErrorXml(std::string_view xml) {
  AzureError error;
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return error;
  pugi::xml_node root = doc.child("Error");
  error.code = root.child("Code").text().as_string();
  std::string message = root.child("Message").text().as_string();
  message = message.substr(0, message.find('\n'));
  error.message = std::move(message);
  return error;
}

}  // namespace meridian::storage
