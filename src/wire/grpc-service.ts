// Builds @grpc/grpc-js service definitions from a protobufjs reflection Root with our own
// serializers (Type.encode/decode), instead of @grpc/proto-loader's slower toObject path.

import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';

export function serviceDefinition(root: protobuf.Root, serviceFullName: string): grpc.ServiceDefinition {
  const service = root.lookupService(serviceFullName);
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const req = method.resolvedRequestType!;
    const res = method.resolvedResponseType!;
    def[method.name] = {
      path: `/${serviceFullName}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: (v: unknown) => asBuffer(req.encode(v as protobuf.Message).finish()),
      requestDeserialize: (b: Buffer) => req.decode(b),
      responseSerialize: (v: unknown) => asBuffer(res.encode(v as protobuf.Message).finish()),
      responseDeserialize: (b: Buffer) => res.decode(b),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return def as grpc.ServiceDefinition;
}

/** protobufjs already returns a Buffer on Node; wrap (never copy) anything else. */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * Binds `server` to `addr` without TLS; resolves with the port. An address another process
 * holds becomes one plain sentence (grpc-js reports "No address added out of total 1
 * resolved errors: [listen EADDRINUSE ...]"; it exposes no error code, so its text is read
 * here, for the message only).
 */
export function bindInsecure(server: grpc.Server, addr: string, what: string): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (!err) return resolve(port);
      if (err.message.includes('EADDRINUSE')) return reject(new Error(`${what} ${addr} is already in use by another process (EADDRINUSE)`, { cause: err }));
      reject(err);
    }),
  );
}
