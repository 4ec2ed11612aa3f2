/**
 * The output a request is assumed to reach when it names no max_tokens: the first matching
 * governance.max_output_tokens_by_model entry, else governance.default_max_output_tokens.
 */
import type { GovernanceConfig } from '../config/types.js';
import { compileGlob } from '../glob.js';

export function defaultMaxOutputTokens(g: Pick<GovernanceConfig, 'default_max_output_tokens' | 'max_output_tokens_by_model'>): (provider: string, model: string) => number {
  const byModel = g.max_output_tokens_by_model.map((d) => ({ provider: compileGlob(d.provider ?? '*'), model: compileGlob(d.model), tokens: d.tokens }));
  return (provider, model) => byModel.find((d) => d.provider.matches(provider) && d.model.matches(model))?.tokens ?? g.default_max_output_tokens;
}
