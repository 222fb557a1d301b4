#include "runtime/core/published_names.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

NamePublish pub(std::uint64_t id, std::string key, std::string value, int rank) {
  return NamePublish{id, {PublishedName{std::move(key), std::move(value), rank}}};
}

TEST(PublishedNamesTest, APublishedNameIsFound) {
  PublishedNames n;
  auto a = n.publish(1, pub(1, "ocean", "port-A", 0));
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].node, 1);
  EXPECT_EQ(a[0].reply.status, 0);
  auto found = n.lookup(2, NameLookup{2, {"ocean"}, false});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].node, 2);
  EXPECT_EQ(found[0].reply.request_id, 2u);
  EXPECT_EQ(found[0].reply.status, 0);
  EXPECT_EQ(found[0].reply.names, (std::vector<PublishedName>{{"ocean", "port-A", 0}}));
}

TEST(PublishedNamesTest, AMissingNameIsNotFoundUnlessTheLookupWaits) {
  PublishedNames n;
  auto now = n.lookup(2, NameLookup{1, {"ocean"}, false});
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].reply.status, kNameNotFound);
  EXPECT_TRUE(n.lookup(2, NameLookup{2, {"ocean", "sky"}, true}).empty());
  EXPECT_EQ(n.waiting(), 1u);
  auto first = n.publish(0, pub(3, "ocean", "port-A", 0));
  ASSERT_EQ(first.size(), 1u);  // the publisher's answer only: "sky" is still missing
  auto second = n.publish(1, pub(4, "sky", "port-B", 3));
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[1].node, 2);
  EXPECT_EQ(second[1].reply.request_id, 2u);
  EXPECT_EQ(second[1].reply.names.size(), 2u);
  EXPECT_EQ(n.waiting(), 0u);
}

TEST(PublishedNamesTest, ANameTakenByAnotherRankIsRefusedWhole) {
  PublishedNames n;
  n.publish(0, pub(1, "ocean", "port-A", 0));
  NamePublish both{2, {{"sky", "x", 1}, {"ocean", "y", 1}}};
  auto a = n.publish(0, both);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].reply.status, kNameDuplicate);
  EXPECT_EQ(n.lookup(0, NameLookup{3, {"sky"}, false})[0].reply.status, kNameNotFound);
  EXPECT_EQ(n.lookup(0, NameLookup{4, {"ocean"}, false})[0].reply.names[0].value, "port-A");
}

TEST(PublishedNamesTest, ARankUnpublishesOnlyItsOwnNames) {
  PublishedNames n;
  n.publish(0, pub(1, "ocean", "port-A", 0));
  n.publish(0, pub(2, "sky", "port-B", 1));
  EXPECT_EQ(n.unpublish(0, NameUnpublish{3, 1, {"ocean"}}).reply.status, kNameNotFound);
  EXPECT_EQ(n.unpublish(0, NameUnpublish{4, 0, {"ocean"}}).reply.status, 0);
  EXPECT_EQ(n.lookup(0, NameLookup{5, {"ocean"}, false})[0].reply.status, kNameNotFound);
  EXPECT_EQ(n.unpublish(0, NameUnpublish{6, 1, {}}).reply.status, 0);
  EXPECT_EQ(n.lookup(0, NameLookup{7, {"sky"}, false})[0].reply.status, kNameNotFound);
}

TEST(PublishedNamesTest, ALostNodesLookupsNoLongerWait) {
  PublishedNames n;
  n.lookup(2, NameLookup{1, {"ocean"}, true});
  n.node_lost(2);
  EXPECT_EQ(n.waiting(), 0u);
  EXPECT_EQ(n.publish(0, pub(2, "ocean", "p", 0)).size(), 1u);
}

}  // namespace
}  // namespace mosix
