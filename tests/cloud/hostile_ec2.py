"""A hostile "EC2" for Latch's tests: it answers DescribeInstances by the region in the
request's SigV4 credential scope (it checks no signature: it is not AWS, it is an endpoint
that went wrong or turned hostile):

  us-east-1      200 with XML that stops in the middle of an element
  eu-west-1      200 with no Content-Length and 40 MiB of XML (more than the host accepts)
  ap-south-1     200 with 10,000 instances on one page (EC2 pages at 1,000)
  ca-central-1   one well-formed instance (its Name tag full of shell, XML and URL syntax)

  python3 hostile_ec2.py serve PORT FIXTURE LOG      (FIXTURE is not read)
"""

import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><reservationSet><item><reservationId>r-1</reservationId><instancesSet>'
TAIL = "</instancesSet></item></reservationSet></DescribeInstancesResponse>"


def instance(i, name="web"):
    return ("<item><instanceId>i-%017x</instanceId><instanceState><code>16</code><name>running</name>"
            "</instanceState><privateIpAddress>127.0.14.2</privateIpAddress><tagSet><item><key>Name</key>"
            "<value>%s</value></item><item><key>env</key><value>prod</value></item></tagSet></item>" % (i, name))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    log = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        m = re.search(r"Credential=[^/]+/\d+/([a-z0-9-]+)/ec2/", self.headers.get("Authorization", ""))
        region = m.group(1) if m else "?"
        with open(self.log, "a") as f:
            f.write("POST %s\n" % region)
        if region == "eu-west-1":
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.end_headers()
            self.wfile.write(HEAD.encode())
            chunk = ("<!--" + "x" * 65_000 + "-->").encode()
            try:
                for _ in range(40 * 1024 * 1024 // len(chunk) + 1):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if region == "us-east-1":
            body = HEAD + instance(1)[:90]
        elif region == "ap-south-1":
            body = HEAD + "".join(instance(i) for i in range(1, 10_001)) + TAIL
        else:
            body = HEAD + instance(0xA1B2C3D4E5F60718, "$(id);&lt;x&gt;&amp;a=b%20'") + TAIL
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    if sys.argv[1:2] != ["serve"]:
        sys.exit("usage: hostile_ec2.py serve PORT FIXTURE LOG")
    Handler.log = sys.argv[4]
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()


if __name__ == "__main__":
    main()
