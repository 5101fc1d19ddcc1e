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

/** Fills an empty directory with a root filesystem. */
export interface TemplateBuilder {
  readonly name: string;
  readonly description: string;
  build(dir: string, progress: ProgressFn): Promise<{ source: string }>;
}
