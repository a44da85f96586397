// Errors with stable codes. Every error vxnet throws is a VxError whose `code` users match on;
// the codes are listed in docs/ERRORS.md. Messages name the object and the option at fault.

export type VxErrorCode = `ERR_${string}`;

export class VxError extends Error {
  readonly code: VxErrorCode;
  constructor(code: VxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VxError';
    this.code = code;
  }
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

export function isVxError(e: unknown, code?: VxErrorCode): e is VxError {
  return e instanceof VxError && (code === undefined || e.code === code);
}
