"""The peer of the benchmark's one-call route: answers every HTTP request
with a few bytes and counts them, so that the benchmark can check that each
call Odoo made was journaled. ``GET /count`` answers the count (not counted).

    python3 responder.py PORT_FILE

listens on a free loopback port and writes it to PORT_FILE."""

import asyncio
import sys

count = 0
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Responder(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.data = b""

    def data_received(self, data):
        global count
        self.data += data
        if b"\r\n\r\n" not in self.data:
            return
        if self.data.startswith(b"GET /count "):
            body = str(count).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                                 b"Connection: close\r\n\r\n%s" % (len(body), body))
        else:
            count += 1
            self.transport.write(OK)
        self.transport.close()


async def main(port_file):
    server = await asyncio.get_running_loop().create_server(Responder, "127.0.0.1", 0,
                                                            backlog=512)
    with open(port_file, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
