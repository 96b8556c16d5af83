/**
 * A real DNS server (dns2, over UDP) on loopback whose answers the test sets,
 * standing in for the cluster DNS of a Kubernetes headless Service in the
 * GPU-endpoint discovery tests.
 */
import dns2 from 'dns2';

const { Packet } = dns2;

/** What the server does with a question about a name: answer these IPv4 addresses, say NXDOMAIN, or never reply. */
export type DnsAnswer = readonly string[] | 'nxdomain' | 'silent';

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, for a `dns://<server>/name:port` target. */
  readonly address: string;
  /** What questions about `name` get from now on (names never set get NXDOMAIN). */
  answer(name: string, answer: DnsAnswer): void;
  /** Questions received, all names and types. */
  readonly questions: number;
  /** Stops listening (questions then go unanswered); `start` listens again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const answers = new Map<string, DnsAnswer>();
  let questions = 0;
  let port = 0;
  let socket: dns2.UDPServer | undefined;
  const listen = async () => {
    const server = dns2.createUDPServer((request, send) => {
      questions++;
      const [question] = request.questions;
      const answer = answers.get(question.name.toLowerCase()) ?? 'nxdomain';
      if (answer === 'silent') return;
      const response = Packet.createResponseFromRequest(request);
      if (answer === 'nxdomain') response.header.rcode = Packet.RCODE.NXDOMAIN;
      // A records only: an AAAA question gets an empty NOERROR answer (NODATA), as for a cluster without IPv6.
      else if (question.type === Packet.TYPE.A) {
        for (const address of answer) response.answers.push(Packet.createResourceFromQuestion(question, { ttl: 5, address }));
      }
      void send(response);
    });
    await server.listen(port, '127.0.0.1');
    port = server.address().port;
    socket = server;
  };
  await listen();
  return {
    get address() {
      return `127.0.0.1:${port}`;
    },
    get questions() {
      return questions;
    },
    answer: (name, answer) => void answers.set(name.toLowerCase(), answer),
    stop: async () => {
      const closing = socket;
      socket = undefined;
      if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
    },
    start: listen,
  };
}
