// The generated clients over gRPC-web (binary), same origin as the page.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountsService } from "./gen/cudly/recommendations/v1/accounts_pb";
import { RecommendationsService } from "./gen/cudly/recommendations/v1/recommendations_pb";
import { accessToken, noteTokenAccepted, onUnauthenticated } from "./auth";

/** Adds the bearer token when signed in, and starts a new sign-in when a call is refused. */
const authorize: Interceptor = (next) => async (request) => {
  const token = accessToken();
  if (token) request.header.set("authorization", `Bearer ${token}`);
  try {
    const response = await next(request);
    if (token) noteTokenAccepted();
    return response;
  } catch (error) {
    reportIfUnauthenticated(error);
    throw error;
  }
};

/** Streams fail while being read, after the interceptor returned: they report here too. */
export function reportIfUnauthenticated(error: unknown): void {
  const e = ConnectError.from(error);
  if (e.code === Code.Unauthenticated) onUnauthenticated(e.rawMessage);
}

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [authorize],
});

export const recommendations = createClient(RecommendationsService, transport);
export const accounts = createClient(AccountsService, transport);

/** The gRPC code of a failed call (Unknown for anything that is not a ConnectError). */
export function codeOf(error: unknown): Code {
  return ConnectError.from(error).code;
}

/** True when the call was cancelled by the page itself (navigation, unmount). */
export function isAbort(error: unknown): boolean {
  return codeOf(error) === Code.Canceled || (error instanceof DOMException && error.name === "AbortError");
}

/** A failed call in words, for the person reading the page. */
export function describeError(error: unknown): string {
  const e = ConnectError.from(error);
  switch (e.code) {
    case Code.Unavailable:
      return "The service is unavailable; try again shortly.";
    case Code.PermissionDenied:
      return `Permission denied: ${e.rawMessage}`;
    case Code.Unauthenticated:
      return "You are not signed in.";
    default:
      return e.rawMessage || `The call failed (${Code[e.code]}).`;
  }
}

export { Code };
