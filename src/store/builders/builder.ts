export interface BuildProgress {
  /** Short name of the step ("download", "extract", "finalize" ...). */
  readonly phase: string;
  readonly message?: string;
  /** 0..100 when known. */
  readonly percent?: number;
}

export type ProgressFn = (p: BuildProgress) => void;

/** Fills an empty directory with a root filesystem. */
export interface TemplateBuilder {
  readonly name: string;
  readonly description: string;
  build(dir: string, progress: ProgressFn): Promise<{ source: string }>;
}
