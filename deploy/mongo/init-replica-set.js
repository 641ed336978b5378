// Initiates Moim's MongoDB replica set and waits until it has a primary.
// Run by the stacks' mongo-init service with mongosh against the first
// member:
//   MOIM_REPLICA_SET=rs0 MOIM_REPLICA_MEMBERS=mongo-1:27017,mongo-2:27017 \
//     mongosh --quiet --host mongo-1:27017 init-replica-set.js
// Safe to run again: a set already initiated is left as it is. Exits 0
// once a primary accepts writes, 1 if none does within five minutes (the
// stack then runs it again).
const name = process.env.MOIM_REPLICA_SET;
const hosts = (process.env.MOIM_REPLICA_MEMBERS || "").split(",").filter((h) => h);
if (!name || hosts.length === 0) {
  print("MOIM_REPLICA_SET and MOIM_REPLICA_MEMBERS must be set");
  quit(2);
}

const deadline = Date.now() + 5 * 60 * 1000;
while (Date.now() < deadline) {
  try {
    const status = db.adminCommand({ replSetGetStatus: 1 });
    const primary = status.members.find((m) => m.stateStr === "PRIMARY");
    if (primary) {
      print(`replica set ${name} ready: primary ${primary.name}, ${status.members.length} member(s)`);
      quit(0);
    }
    print(`replica set ${name}: waiting for a primary`);
  } catch (e) {
    if (e.codeName !== "NotYetInitialized") {
      print(`replica set ${name}: ${e.message}`);
    } else {
      try {
        // Fails while another member is still unreachable; tried again below.
        rs.initiate({ _id: name, members: hosts.map((host, i) => ({ _id: i, host })) });
        print(`replica set ${name} initiated with ${hosts.join(", ")}`);
      } catch (e2) {
        print(`replica set ${name}: initiate: ${e2.message}`);
      }
    }
  }
  sleep(2000);
}
print(`replica set ${name}: no primary after five minutes`);
quit(1);
