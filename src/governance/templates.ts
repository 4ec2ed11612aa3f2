/**
 * Budget Templates: one budget instance per group value. An instance is a pure function of the
 * template and the group value, with the id `<template id>:<group value>`, so every sidecar derives
 * the same instance (and the same ledger counters) without coordinating.
 */
import type { Budget, BudgetTemplate, GroupBy, RequestSubject, Selector } from './types.js';

/** Template ids never contain it, so an instance id splits at its first occurrence. */
export const INSTANCE_SEPARATOR = ':';

/**
 * The value a subject is grouped under: the consumer, the provider, `provider/model`, or the value
 * of a consumer label. Undefined (no instance) when the subject has no such value: an unknown
 * consumer, no model, or a consumer without that label.
 */
export function groupValue(groupBy: GroupBy, subject: RequestSubject): string | undefined {
  let value: string | undefined;
  if (groupBy === 'consumer') value = subject.consumer;
  else if (groupBy === 'provider') value = subject.provider;
  else if (groupBy === 'model') value = subject.provider !== '' && subject.model !== '' ? `${subject.provider}/${subject.model}` : undefined;
  else value = Object.hasOwn(subject.labels, groupBy.label) ? subject.labels[groupBy.label] : undefined;
  return value === '' ? undefined : value;
}

/** `consumer`, `provider`, `model` or `label:<name>` (the YAML and admin API spelling). */
export function formatGroupBy(groupBy: GroupBy): string {
  return typeof groupBy === 'string' ? groupBy : `label:${groupBy.label}`;
}

/** Consumer label names (selectors and `group_by: label:<name>`). */
export const LABEL_NAME = /^[A-Za-z0-9_.\/-]{1,128}$/;

export function parseGroupBy(text: string): GroupBy | undefined {
  if (text === 'consumer' || text === 'provider' || text === 'model') return text;
  if (!text.startsWith('label:')) return undefined;
  const label = text.slice('label:'.length);
  return LABEL_NAME.test(label) ? { label } : undefined;
}

export function instanceId(templateId: string, group: string): string {
  return `${templateId}${INSTANCE_SEPARATOR}${group}`;
}

/** Splits `<template id>:<group value>`; undefined for an id without a separator or an empty part. */
export function parseInstanceId(id: string): { templateId: string; group: string } | undefined {
  const at = id.indexOf(INSTANCE_SEPARATOR);
  if (at <= 0 || at === id.length - 1) return undefined;
  return { templateId: id.slice(0, at), group: id.slice(at + 1) };
}

/**
 * The template's selector narrowed to the group, for display (admin API). Matching uses the
 * template's compiled selector and the group value, never this (a group value is not a glob).
 */
function narrowed(selector: Selector, groupBy: GroupBy, group: string): Selector {
  if (groupBy === 'consumer') return { ...selector, consumers: [group] };
  if (groupBy === 'provider') return { ...selector, providers: [group] };
  if (groupBy === 'model') {
    const slash = group.indexOf('/');
    return { ...selector, providers: [group.slice(0, slash)], models: [group.slice(slash + 1)] };
  }
  return { ...selector, labels: { ...selector.labels, [groupBy.label]: group } };
}

export function instantiate(template: BudgetTemplate, group: string): Budget {
  const budget: Budget = {
    id: instanceId(template.id, group),
    selector: narrowed(template.selector, template.groupBy, group),
    limits: template.limits,
    mode: template.mode,
    onStoreError: template.onStoreError,
    stopStreams: template.stopStreams,
    source: 'template',
    template: { id: template.id, group },
  };
  if (template.description !== undefined) budget.description = template.description;
  return budget;
}
