export interface BuildProgress {
  /** Short name of the step ("download", "extract", "finalize" ...). */
  readonly phase: string;
  readonly message?: string;
  /** 0..100 when known. */
  readonly percent?: number;
  /** Which of `steps` steps (1-based), e.g. the layer of an image being unpacked. */
  readonly step?: number;
  readonly steps?: number;
  /** Bytes done out of `totalBytes`, when the work is reading something of known size. */
  readonly bytes?: number;
  readonly totalBytes?: number;
}

export type ProgressFn = (p: BuildProgress) => void;

/** What a builder of a layer over another template (`base`) is given. */
export interface BaseContext {
  /** The base template's layer directories, bottom first. */
  readonly layers: readonly string[];
  /** Host uid (and gid) that is root inside a sandbox: the base's files are owned from there on. */
  readonly uidBase: number;
}

/**
 * Fills an empty directory with a root filesystem, or (with `base`) with
 * a layer that goes on top of that built-in template's layers.
 */
export interface TemplateBuilder {
  readonly name: string;
  readonly description: string;
  /** A built-in template this one is a layer over (built first when missing). */
  readonly base?: string;
  build(dir: string, progress: ProgressFn, base?: BaseContext): Promise<{ source: string }>;
}
