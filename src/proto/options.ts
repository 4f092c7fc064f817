import {
  type DescExtension,
  type DescField,
  type DescMethod,
  type ExtensionValueShape,
  getOption,
} from "@bufbuild/protobuf";

type OptionTarget = DescMethod | DescField;

const cache = new WeakMap<DescExtension, WeakMap<OptionTarget, unknown>>();

/**
 * getOption of a method or field option, read once per descriptor: options
 * are fixed when the code is generated, and getOption decodes them into a
 * fresh message on every call, which per-request callers (request limits,
 * roles) cannot afford.
 */
export function optionOf<Ext extends DescExtension>(
  target: OptionTarget,
  extension: Ext,
): ExtensionValueShape<Ext> {
  let values = cache.get(extension);
  if (values === undefined) {
    values = new WeakMap();
    cache.set(extension, values);
  }
  if (!values.has(target)) {
    // getOption's type ties the descriptor kind to the extendee; callers pass
    // a method for method options and a field for field options.
    values.set(target, getOption(target as never, extension));
  }
  return values.get(target) as ExtensionValueShape<Ext>;
}
