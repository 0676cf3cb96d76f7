import { type ReactNode, useEffect, useId, useRef } from "react";

/**
 * A modal `<dialog>`: opened on mount, closed by Escape or `close()`, and `onClose` tells the parent
 * to unmount it. The native element traps focus and restores it to the opener.
 */
export function Dialog({
  title,
  onClose,
  wide,
  children,
}: {
  title: string;
  onClose: () => void;
  wide?: boolean;
  children: (close: () => void, titleId: string) => ReactNode;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);
  const close = () => ref.current?.close();
  return (
    <dialog
      ref={ref}
      className={wide ? "dialog dialog-wide" : "dialog"}
      aria-labelledby={`${id}-title`}
      onClose={onClose}
    >
      <h2 id={`${id}-title`}>{title}</h2>
      {children(close, `${id}-title`)}
    </dialog>
  );
}
