export async function start(..._a: unknown[]) {}
