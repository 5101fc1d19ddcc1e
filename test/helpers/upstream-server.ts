import dgram from "node:dgram";
import http from "node:http";
import dnsPacket from "dns-packet";

/**
 * What stands for the internet in network tests, run inside the test's
 * own "upstream" namespace (upstream.ts): an HTTP server on port 80 of
 * every address there, answering "hello from ADDR", and a DNS server on
 * port 53 of the first address with the zone given as NAME=ADDR
 * arguments (other names: NXDOMAIN). Says "ready" on stdout once both
 * listen.
 */
const [dnsAddress, ...records] = process.argv.slice(2);
const zone = new Map(records.map((r) => r.split("=") as [string, string]));

const web = http.createServer((req, res) => {
  res.setHeader("content-type", "text/plain");
  res.end(`hello from ${req.socket.localAddress} for ${req.headers.host ?? ""}\n`);
});
const dns = dgram.createSocket("udp4");
dns.on("message", (msg, from) => {
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    return;
  }
  const question = q.questions?.[0];
  if (!question) return;
  const addr = zone.get(question.name.toLowerCase());
  const answers = addr && question.type === "A" ? [{ type: "A", name: question.name, ttl: 30, data: addr } as dnsPacket.Answer] : [];
  const reply = dnsPacket.encode({ id: q.id ?? 0, type: "response", flags: dnsPacket.RECURSION_AVAILABLE, rcode: addr ? "NOERROR" : "NXDOMAIN", questions: [question], answers } as dnsPacket.Packet);
  dns.send(reply, from.port, from.address);
});
let up = 0;
const ready = () => ++up === 2 && process.stdout.write("ready\n");
web.listen(80, "0.0.0.0", ready);
dns.bind(53, dnsAddress, ready);
process.on("SIGTERM", () => process.exit(0));
