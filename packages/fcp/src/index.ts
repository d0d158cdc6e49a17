/** Placeholder entry point; see README.md. */
export const packageName: string = '@pinhole/fcp';
