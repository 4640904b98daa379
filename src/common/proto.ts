// Finds and loads a module's .proto from the source tree. Compiled code runs from
// dist/src/<module>/ where no .proto is copied, so the path is resolved from the package
// root (the nearest ancestor holding package.json), not from the running file.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Must match the flags of scripts/gen-proto.mjs so runtime objects fit the generated types. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

// A bound on the walk up so a misplaced install fails instead of searching to `/` forever.
const MAX_ROOT_SEARCH_DEPTH = 8;

let packageRootPromise: Promise<string> | undefined;

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function searchPackageRoot(): Promise<string> {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < MAX_ROOT_SEARCH_DEPTH; depth++) {
    if (await exists(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`package root (a directory with package.json) not found above ${fileURLToPath(import.meta.url)}`);
}

/** The directory holding package.json; searched once per process. */
export function packageRoot(): Promise<string> {
  packageRootPromise ??= searchPackageRoot();
  return packageRootPromise;
}

/** `<packageRoot>/src/<module>/<file>`, e.g. protoPath('chunks', 'chunk.proto'). */
export async function protoPath(module: string, file: string): Promise<string> {
  const full = path.join(await packageRoot(), 'src', module, file);
  if (!(await exists(full))) throw new Error(`proto file not found: ${full}`);
  return full;
}

/**
 * Loads `src/<module>/<file>` as a gRPC package object. Callers cast the result to the
 * generated `ProtoGrpcType` of their gen/ folder (the loader cannot know it statically).
 */
export async function loadProto(module: string, file: string): Promise<grpc.GrpcObject> {
  const definition = await protoLoader.load(await protoPath(module, file), PROTO_LOADER_OPTIONS);
  return grpc.loadPackageDefinition(definition);
}
