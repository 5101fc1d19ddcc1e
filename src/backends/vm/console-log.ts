import fs from "node:fs";

/** The bound on a VM's console kept on the host: the last CONSOLE_MAX..2*CONSOLE_MAX bytes. */
export const CONSOLE_MAX = 256 * 1024;

/** A VM's serial console, kept to the last CONSOLE_MAX..2*CONSOLE_MAX bytes (`file` + `file.1`). */
export class ConsoleLog {
  private fd: number;
  private size = 0;
  constructor(
    private readonly file: string,
    private readonly max = CONSOLE_MAX,
  ) {
    this.fd = fs.openSync(file, "w", 0o600);
  }
  write(b: Buffer): void {
    if (this.size + b.length > this.max) {
      fs.closeSync(this.fd);
      fs.renameSync(this.file, `${this.file}.1`);
      this.fd = fs.openSync(this.file, "w", 0o600);
      this.size = 0;
    }
    fs.writeSync(this.fd, b);
    this.size += b.length;
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}
