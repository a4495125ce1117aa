// Types of scripts/gen-config-docs.js for the test that imports it.
import type { z } from 'zod'
export function schemaComments (source: string): Map<string, string>
export function renderConfigDocs (schema: z.ZodObject, source: string): string
