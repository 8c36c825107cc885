// Calls `on` with each complete line a child's stdout or stderr prints (the harnesses read
// their workers' event lines and the CLI's progress this way).
export function lines(stream: NodeJS.ReadableStream, on: (l: string) => void): void {
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      on(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}
